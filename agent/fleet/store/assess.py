"""The board's verdict for each node, kept in the store so that every web process shows the same.

Ingest calls `Assessor.assess(nodes, now_ms)` for the nodes a batch changed, and (one ingest
process at a time, see upkeep.Lease) for the whole fleet every few seconds: silence, outage
lengths and patch ages grow with time alone. A change of level or lens is a transition (a row
in `verdicts`, the timeline); a change of words only updates the node's row. Reading and
judging happen outside the write transaction, so a large fleet never holds the write lock
while it is judged; the write compares and sets, so two processes judging at once write one
transition.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from agent.fleet import state
from agent.fleet.defaults import SILENT_AFTER_S
from agent.fleet.store.db import Database, Tx
from agent.fleet.store.writes import dumps
from agent.readiness.policy import Policy

NODE_CHUNK = 500


@dataclass(frozen=True)
class Judged:
    node: str
    levels: tuple[str, str, str]  # level, security, operations
    reasons: str  # JSON list, as stored
    previous: tuple[tuple[str, str, str], str]
    agent: tuple[str, str, str | None] | None = None  # (stored agent JSON, rechecked agent JSON, disagreement)


def in_list(count: int) -> str:
    return ",".join(["%s"] * count)


def node_chunks(nodes: Collection[str] | None) -> Iterator[list[str] | None]:
    if nodes is None:
        yield None
        return
    listed = sorted(set(nodes))
    for start in range(0, len(listed), NODE_CHUNK):
        yield listed[start:start + NODE_CHUNK]


def where_nodes(column: str, part: list[str] | None, *, joiner: str = "WHERE") -> tuple[str, list[str]]:
    if part is None:
        return "", []
    return f" {joiner} {column} IN ({in_list(len(part))})", part


class Assessor:
    def __init__(self, db: Database, *, silent_after_ms: int = int(SILENT_AFTER_S * 1000),
                 rejected_window_ms: int = int(state.REJECTED_WINDOW_S * 1000)) -> None:
        self.db = db
        self.silent_after_ms = silent_after_ms
        self.rejected_window_ms = rejected_window_ms

    def assess(self, nodes: Collection[str] | None, now_ms: int) -> int:
        """Judge `nodes` (None: every node) at `now_ms`; returns how many rows changed."""
        changed = 0
        for part in node_chunks(nodes):
            with self.db.transaction(write=False) as tx:
                judged = self._judge(tx, part, now_ms)
            changes = [j for j in judged if (j.levels, j.reasons) != j.previous or j.agent]
            if changes:
                with self.db.transaction() as tx:
                    changed += sum(self._write(tx, j, now_ms) for j in changes)
        return changed

    def _judge(self, tx: Tx, part: list[str] | None, now_ms: int) -> list[Judged]:
        clause, params = where_nodes("node", part)
        latest: dict[str, dict[str, dict[str, Any]]] = {}
        for node, stream, seq, ts, received, body in tx.rows(
                f"SELECT node, stream, seq, ts_ms, received_ms, body FROM latest{clause}", params):
            latest.setdefault(node, {})[stream] = {"seq": int(seq), "ts": int(ts), "received_ms": int(received),
                                                   "body": json.loads(body)}
        rejected: dict[str, dict[str, int]] = {}
        since = now_ms - self.rejected_window_ms
        clause_r, params_r = where_nodes("node", part, joiner="AND")
        for node, reason, copies in tx.rows("SELECT node, reason, SUM(copies) FROM rejections WHERE last_ms >= %s"
                                            f"{clause_r} GROUP BY node, reason", [since, *params_r]):
            rejected.setdefault(node, {})[reason] = int(copies)
        out = []
        for node, heard, policy_text, agent, disagreement, level, security, operations, reasons in tx.rows(
                "SELECT node, last_heard_ms, policy, agent, disagreement, level, security, operations, reasons "
                f"FROM nodes{clause}", params):
            policy = Policy.from_body(json.loads(policy_text) if policy_text else None)
            rechecked = state.recheck(json.loads(agent), latest.get(node, {}), policy) if agent else None
            if rechecked is not None:
                disagreement = rechecked[1]
            verdict = state.evaluate(latest.get(node, {}), policy, now_ms, last_heard_ms=heard,
                                     silent_after_ms=self.silent_after_ms, rejected=rejected.get(node, {}),
                                     disagreement=disagreement)
            body = verdict.as_body()
            out.append(Judged(node, (body["level"], body["security"], body["operations"]),
                              json.dumps(body["reasons"], separators=(",", ":"), ensure_ascii=False),
                              ((level, security, operations), reasons),
                              None if rechecked is None else (agent, dumps(rechecked[0]), rechecked[1])))
        return out

    @staticmethod
    def _write(tx: Tx, judged: Judged, now_ms: int) -> int:
        level, security, operations = judged.levels
        if judged.agent is not None:  # unless a newer verdict of the agent's came in meanwhile
            stored, rechecked, disagreement = judged.agent
            tx.run("UPDATE nodes SET agent = %s, disagreement = %s, changed_ms = %s WHERE node = %s AND agent = %s",
                   [rechecked, disagreement, now_ms, judged.node, stored])
        if judged.levels != judged.previous[0]:
            moved = tx.rows("UPDATE nodes SET level = %s, security = %s, operations = %s, reasons = %s, "
                            "verdict_ms = %s, changed_ms = %s WHERE node = %s AND NOT (level = %s AND security = %s "
                            "AND operations = %s) RETURNING node",
                            [level, security, operations, judged.reasons, now_ms, now_ms, judged.node,
                             level, security, operations])
            if moved:
                tx.run("INSERT INTO verdicts (node, ms, level, security, operations) VALUES (%s, %s, %s, %s, %s) "
                       "ON CONFLICT DO NOTHING", [judged.node, now_ms, level, security, operations])
                return 1
        return tx.count("UPDATE nodes SET reasons = %s, changed_ms = %s WHERE node = %s AND reasons <> %s",
                        [judged.reasons, now_ms, judged.node, judged.reasons])
