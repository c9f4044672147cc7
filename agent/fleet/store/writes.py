"""Ingest's side of the fleet store: a batch of received messages goes in in one transaction.

For each message the store, not the process, decides what it is (`StoreWriter.admit`):
- `fresh`: a verified message whose (node, session, seq) was never stored; it is kept, and
  becomes its stream's latest if it is the newest (agent.fleet.state.newer);
- `duplicate`: the same bytes under a stored key (a QoS 1 redelivery, a retained copy on
  resubscribe, the copy from the second subscription, another ingest's): quiet, not counted
  as a message, counted per node as a duplicate;
- `replay`: another signed message under a stored key: rejected and counted;
- `invalid_body`: authentic (kept in the guard, so it is counted once) but its body breaks
  its kind's model (agent.fleet.bodies): rejected, counted against the node;
- `rejected`: failed verification (reason from agent.trust): counted against the node the
  topic names, once per distinct payload (copies counted); a node seen only so never
  becomes a fleet node;
- `quiet`: a retained message too old to verify, or a duplicate the verifier already knew.
Rows are written in key order, so two ingest processes never deadlock on each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.fleet import state
from agent.fleet.store.db import Database, Tx, ladder
from agent.readiness.policy import Policy
from agent.trust import envelope

FRESH, DUPLICATE, REPLAY, INVALID_BODY, REJECTED, QUIET = (
    "fresh", "duplicate", "replay", "invalid_body", "rejected", "quiet")
MAX_STREAMS = 256  # streams one node may fill; a buggy or hostile node cannot grow the store without bound

# agent.fleet.state.newer in SQL, for the upsert of `latest` (another ingest may have written since).
NEWER_SQL = """(excluded.kind = 'status' AND excluded.received_ms >= latest.received_ms)
    OR (excluded.kind <> 'status' AND (excluded.seq > latest.seq
        OR (excluded.session <> latest.session AND excluded.ts_ms > latest.ts_ms)))"""

Key = tuple[str, str, int]  # node, session, seq


@dataclass(frozen=True)
class Arrival:
    """One message as received: its verdict from agent.trust, its body's problem if any."""

    topic: str
    payload: bytes
    verdict: envelope.Verdict
    received_ms: int
    retained: bool = False
    body_problem: str | None = None
    local_topic: str = ""  # the topic as its site published it (a bridge's prefix taken off); "": `topic`

    @property
    def where(self) -> tuple[str, str] | None:
        """(node, stream) its topic names, as its site published it."""
        return state.stream_of(self.local_topic or self.topic)

    @property
    def fields(self) -> dict[str, Any]:
        assert self.verdict.fields is not None
        return self.verdict.fields

    @property
    def key(self) -> Key:
        fields = self.fields
        return fields["node"], fields["session"], fields["seq"]


@dataclass
class Admitted:
    outcomes: list[str]  # per arrival, in order
    dirty: set[str] = field(default_factory=set)  # nodes whose verdict may have changed
    rejections: list[tuple[str, str, str]] = field(default_factory=list)  # (topic, reason, detail) to log


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def digest(topic: str, payload: bytes) -> str:
    return hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()[:32]


class StoreWriter:
    """Admits batches for one ingest process; `started_ms` is when it subscribed."""

    def __init__(self, db: Database, *, started_ms: int, max_streams: int = MAX_STREAMS) -> None:
        self.db, self.started_ms, self.max_streams = db, started_ms, max_streams
        self._streams: dict[str, set[str]] = {}  # node -> streams known to be stored

    def admit(self, arrivals: Sequence[Arrival], now_ms: int) -> Admitted:
        with self.db.transaction() as tx:
            return self._admit(tx, arrivals, now_ms)

    def _admit(self, tx: Tx, arrivals: Sequence[Arrival], now_ms: int) -> Admitted:
        outcomes = [QUIET] * len(arrivals)
        verified = [i for i, a in enumerate(arrivals) if a.verdict.valid]
        for i, outcome in zip(verified, self._guard(tx, [arrivals[i] for i in verified])):
            outcomes[i] = INVALID_BODY if outcome == FRESH and arrivals[i].body_problem else outcome
        admitted = Admitted(outcomes)
        fresh = [arrivals[i] for i in verified if outcomes[i] in (FRESH, INVALID_BODY)]
        self._sessions(tx, fresh)
        good = [arrivals[i] for i in verified if outcomes[i] == FRESH]
        candidates, ignored = self._streams_allowed(tx, good)
        self._nodes(tx, fresh, [arrivals[i] for i in verified if outcomes[i] == DUPLICATE], ignored, now_ms)
        derive(tx, sorted(self._latest(tx, candidates), key=lambda a: a.received_ms))
        admitted.dirty.update(a.fields["node"] for a in fresh)
        self._rejections(tx, arrivals, outcomes, admitted)
        return admitted

    # ------------------------------------------------------------------ the guard

    def _guard(self, tx: Tx, verified: list[Arrival]) -> list[str]:
        """fresh, duplicate or replay for each verified arrival, decided by the messages' key."""
        first: dict[Key, Arrival] = {}
        for arrival in verified:
            first.setdefault(arrival.key, arrival)
        ordered = sorted(first.items())
        rows = tx.many("INSERT INTO messages (node, session, seq, stream, ts_ms, received_ms, payload) VALUES {rows} "
                       "ON CONFLICT (node, session, seq) DO NOTHING RETURNING node, session, seq",
                       [(*key, a.where[1], a.fields["ts"], a.received_ms, a.payload)
                        for key, a in ordered], returning=True)
        inserted = {(node, session, int(seq)) for node, session, seq in rows}
        stored = self._stored_payloads(tx, [k for k, _ in ordered if k not in inserted])
        outcomes, taken = [], set()
        for arrival in verified:
            key = arrival.key
            if key in inserted and key not in taken and first[key] is arrival:
                taken.add(key)
                outcomes.append(FRESH)
            else:
                reference = first[key].payload if key in inserted else stored.get(key, arrival.payload)
                outcomes.append(DUPLICATE if arrival.payload == reference else REPLAY)
        return outcomes

    @staticmethod
    def _stored_payloads(tx: Tx, keys: list[Key]) -> dict[Key, bytes]:
        found: dict[Key, bytes] = {}
        for part in ladder(keys):  # rare (copies after a restart): no need to pipeline
            rows = tx.rows("SELECT node, session, seq, payload FROM messages WHERE (node, session, seq) IN "
                           f"(VALUES {','.join(['(%s,%s,%s)'] * len(part))})", [x for key in part for x in key])
            found.update({(node, session, int(seq)): bytes(payload) for node, session, seq, payload in rows})
        return found

    # ------------------------------------------------------------------ per node and stream

    def _streams_allowed(self, tx: Tx, good: list[Arrival]) -> tuple[list[Arrival], dict[str, int]]:
        """The arrivals whose stream the node may have, and per node how many were not."""
        unknown = {a.fields["node"] for a in good
                   if a.where[1] not in self._streams.get(a.fields["node"], ())}
        for part in ladder(sorted(unknown)):
            for node, stream in tx.rows(f"SELECT node, stream FROM latest WHERE node IN ({','.join(['%s'] * len(part))})",
                                        list(part)):
                self._streams.setdefault(node, set()).add(stream)
        allowed, ignored = [], {}
        for arrival in good:
            node, stream = arrival.fields["node"], arrival.where[1]
            streams = self._streams.setdefault(node, set())
            if stream not in streams and len(streams) >= self.max_streams:
                ignored[node] = ignored.get(node, 0) + 1
                continue
            streams.add(stream)
            allowed.append(arrival)
        return allowed, ignored

    def _latest(self, tx: Tx, candidates: list[Arrival]) -> list[Arrival]:
        """Upsert each stream's newest candidate; the arrivals that became their stream's latest."""
        best: dict[tuple[str, str], Arrival] = {}
        for arrival in candidates:
            where = (arrival.fields["node"], arrival.where[1])
            if where not in best or state.newer(held(arrival), held(best[where])):
                best[where] = arrival
        rows = tx.many(
            "INSERT INTO latest (node, stream, kind, session, seq, kid, ts_ms, received_ms, body) VALUES {rows} "
            "ON CONFLICT (node, stream) DO UPDATE SET kind = excluded.kind, session = excluded.session, "
            "seq = excluded.seq, kid = excluded.kid, ts_ms = excluded.ts_ms, received_ms = excluded.received_ms, "
            f"body = excluded.body WHERE {NEWER_SQL} RETURNING node, stream",
            [(node, stream, a.fields["kind"], a.fields["session"], a.fields["seq"], a.fields["kid"], a.fields["ts"],
              a.received_ms, dumps(a.fields["body"])) for (node, stream), a in sorted(best.items())], returning=True)
        return [best[(node, stream)] for node, stream in rows]

    @staticmethod
    def _sessions(tx: Tx, fresh: list[Arrival]) -> None:
        spans: dict[tuple[str, str], list[int]] = {}  # first_seq, last_seq, received, first_ms, last_ms
        for arrival in fresh:
            node, session, seq = arrival.key
            span = spans.setdefault((node, session), [seq, seq, 0, arrival.received_ms, arrival.received_ms])
            span[0], span[1], span[2] = min(span[0], seq), max(span[1], seq), span[2] + 1
            span[3], span[4] = min(span[3], arrival.received_ms), max(span[4], arrival.received_ms)
        tx.many("INSERT INTO sessions (node, session, first_seq, last_seq, received, first_ms, last_ms) "
                "VALUES {rows} ON CONFLICT (node, session) DO UPDATE SET "
                "first_seq = CASE WHEN excluded.first_seq < sessions.first_seq THEN excluded.first_seq "
                "ELSE sessions.first_seq END, "
                "last_seq = CASE WHEN excluded.last_seq > sessions.last_seq THEN excluded.last_seq "
                "ELSE sessions.last_seq END, received = sessions.received + excluded.received, "
                "first_ms = CASE WHEN excluded.first_ms < sessions.first_ms THEN excluded.first_ms "
                "ELSE sessions.first_ms END, "
                "last_ms = CASE WHEN excluded.last_ms > sessions.last_ms THEN excluded.last_ms "
                "ELSE sessions.last_ms END",
                [(*key, *span) for key, span in sorted(spans.items())])

    def _nodes(self, tx: Tx, fresh: list[Arrival], duplicates: list[Arrival], ignored: dict[str, int],
               now_ms: int) -> None:
        rows: dict[str, list[int]] = {}  # first_ms, last_heard_ms, verified, duplicates, ignored
        for arrival in fresh:
            row = rows.setdefault(arrival.fields["node"], [arrival.received_ms, 0, 0, 0, 0])
            heard = state.heard_ms(arrival.fields["ts"], arrival.received_ms, arrival.retained, self.started_ms)
            row[0], row[1] = min(row[0], arrival.received_ms), max(row[1], heard)
            row[2] += arrival.body_problem is None
        for arrival in duplicates:
            rows.setdefault(arrival.fields["node"], [arrival.received_ms, 0, 0, 0, 0])[3] += 1
        for node, count in ignored.items():
            rows.setdefault(node, [now_ms, 0, 0, 0, 0])[4] += count
        tx.many("INSERT INTO nodes (node, first_ms, last_heard_ms, verified, duplicates, ignored_streams, "
                "changed_ms) VALUES {rows} ON CONFLICT (node) DO UPDATE SET "
                "last_heard_ms = CASE WHEN excluded.last_heard_ms > nodes.last_heard_ms "
                "THEN excluded.last_heard_ms ELSE nodes.last_heard_ms END, "
                "verified = nodes.verified + excluded.verified, duplicates = nodes.duplicates + excluded.duplicates, "
                "ignored_streams = nodes.ignored_streams + excluded.ignored_streams, changed_ms = excluded.changed_ms",
                [(node, *row, now_ms) for node, row in sorted(rows.items())])

    # ------------------------------------------------------------------ rejections

    def _rejections(self, tx: Tx, arrivals: Sequence[Arrival], outcomes: list[str], admitted: Admitted) -> None:
        live: dict[str, list[Any]] = {}
        kept: dict[str, list[Any]] = {}
        for i, arrival in enumerate(arrivals):
            reason, detail = self._rejection(arrival, outcomes[i])
            if reason is None:
                continue
            outcomes[i] = outcomes[i] if outcomes[i] in (REPLAY, INVALID_BODY) else REJECTED
            where = arrival.where
            node = (arrival.fields["node"] if arrival.verdict.valid else (where[0] if where else None))
            if node:
                admitted.dirty.add(node)
            admitted.rejections.append((arrival.topic, reason, detail))
            rows = kept if arrival.retained else live
            sha = digest(arrival.topic, arrival.payload)
            if sha in rows:
                rows[sha][-1] += 1
                rows[sha][-2] = max(rows[sha][-2], arrival.received_ms)
            else:
                rows[sha] = [sha, node, arrival.topic[:200], reason, detail[:300], arrival.received_ms,
                             arrival.received_ms, 1]
        for rows, on_conflict in ((live, "DO UPDATE SET copies = rejections.copies + excluded.copies, "
                                         "last_ms = excluded.last_ms"), (kept, "DO NOTHING")):
            tx.many("INSERT INTO rejections (digest, node, topic, reason, detail, first_ms, last_ms, copies) "
                    "VALUES {rows} ON CONFLICT (digest) " + on_conflict, sorted(rows.values(), key=lambda r: r[0]))

    @staticmethod
    def _rejection(arrival: Arrival, outcome: str) -> tuple[str | None, str]:
        if outcome == REPLAY:
            fields = arrival.fields
            return envelope.REPLAY, f"another message was stored as seq {fields['seq']} of session {fields['session'][:64]!r}"
        if outcome == INVALID_BODY:
            return INVALID_BODY, arrival.body_problem or ""
        verdict = arrival.verdict
        if verdict.valid or verdict.reason in state.QUIET_REASONS or (arrival.retained and state.old_news(verdict)):
            return None, ""
        return verdict.reason or "invalid", verdict.detail


def held(arrival: Arrival) -> state.Held:
    fields = arrival.fields
    return state.Held(fields["kind"], fields["session"], fields["seq"], fields["ts"], arrival.received_ms)


# ---------------------------------------------------------------------- what a newest message changes


def derive(tx: Tx, applied: list[Arrival]) -> None:
    """What streams' new latest messages change beyond `latest`: the node's site and held Will,
    the agent's verdict and the board's agreement, device outages, patch and posture history."""
    modbus = [a for a in applied if a.fields["kind"] == "modbus"]
    register_devices(tx, modbus)
    end_outages(tx, [a for a in modbus if a.fields["body"]["status"]["state"] != "offline"])  # one statement
    for arrival in applied:
        fields = arrival.fields
        node, kind, body, ts = fields["node"], fields["kind"], fields["body"], fields["ts"]
        if kind == "status":
            will = body.get("will_seq")
            tx.run("UPDATE nodes SET site = %s, area = %s" + (", will_session = %s, will_seq = %s" if will is not None
                                                              else "") + " WHERE node = %s",
                   [body.get("site", ""), body.get("area", ""),
                    *([fields["session"], will] if will is not None else []), node])
        elif kind == "readiness":
            _agent_verdict(tx, node, fields)
        elif kind == "modbus" and body["status"]["state"] == "offline":
            _outage_starts(tx, node, device_of(arrival), body, ts)
        elif kind == "patches" and body.get("status") == "ok":  # a failed scan's empty list is no news
            _patches(tx, node, body, ts)
        elif kind == "posture":
            _posture(tx, node, body, ts)


def _agent_verdict(tx: Tx, node: str, fields: dict[str, Any]) -> None:
    body = fields["body"]
    inputs = body.get("inputs") or {}
    held_rows: dict[str, dict[str, Any]] = {}
    if inputs:
        marks = ",".join(["%s"] * len(inputs))
        for stream, seq, ts, text in tx.rows(f"SELECT stream, seq, ts_ms, body FROM latest WHERE node = %s AND "
                                             f"stream IN ({marks})", [node, *inputs]):
            held_rows[stream] = {"seq": int(seq), "ts": int(ts), "body": json.loads(text)}
    policy = Policy.from_body(body.get("policy"))
    agent, disagreement = state.agent_view(fields, held_rows, policy)
    tx.run("UPDATE nodes SET policy = %s, agent = %s, disagreement = %s WHERE node = %s",
           [dumps(policy.to_body()), dumps(agent), disagreement, node])


def policy_of(tx: Tx, node: str) -> Policy:
    rows = tx.rows("SELECT policy FROM nodes WHERE node = %s", [node])
    return Policy.from_body(json.loads(rows[0][0]) if rows and rows[0][0] else None)


def device_of(arrival: Arrival) -> str:
    """The Modbus device a reading is about, from its topic as its site published it."""
    where = arrival.where
    assert where is not None  # ingest stores only messages whose topic names node and stream
    return where[1].partition("/")[2]


def register_devices(tx: Tx, modbus: list[Arrival]) -> None:
    """Each reporting device's first and last report (the asset register)."""
    spans: dict[tuple[str, str], list[int]] = {}
    for arrival in modbus:
        ts = arrival.fields["ts"]
        span = spans.setdefault((arrival.fields["node"], device_of(arrival)), [ts, ts])
        span[0], span[1] = min(span[0], ts), max(span[1], ts)
    tx.many("INSERT INTO devices (node, device, first_ms, last_ms) VALUES {rows} ON CONFLICT (node, device) DO UPDATE "
            "SET first_ms = CASE WHEN excluded.first_ms < devices.first_ms THEN excluded.first_ms "
            "ELSE devices.first_ms END, last_ms = CASE WHEN excluded.last_ms > devices.last_ms "
            "THEN excluded.last_ms ELSE devices.last_ms END",
            [(*key, *span) for key, span in sorted(spans.items())])


def end_outages(tx: Tx, up: list[Arrival]) -> None:
    """Devices reading again: their open outage episodes end at the reading's time."""
    tx.many("UPDATE outages SET end_ms = v.column3 FROM (VALUES {rows}) AS v WHERE outages.node = v.column1 "
            "AND outages.device = v.column2 AND outages.end_ms IS NULL AND outages.start_ms <= v.column3",
            sorted({(a.fields["node"], device_of(a), a.fields["ts"]) for a in up}))


def _outage_starts(tx: Tx, node: str, device: str, body: dict[str, Any], ts: int) -> None:
    """A device that read nothing: an outage episode opens (once) at its last success."""
    status = body["status"]
    asset = policy_of(tx, node).device(device)
    start = status.get("last_success_ms") or ts
    tx.run("INSERT INTO outages (node, device, start_ms, end_ms, criticality, max_downtime_s) "
           "SELECT %s, %s, %s, NULL, %s, %s WHERE NOT EXISTS (SELECT 1 FROM outages WHERE node = %s AND device = %s "
           "AND end_ms IS NULL) ON CONFLICT DO NOTHING",
           [node, device, start, asset.criticality, asset.max_downtime_s, node, device])


def _patches(tx: Tx, node: str, body: dict[str, Any], ts: int) -> None:
    pending = {u["package"]: u for u in body.get("security_updates") or []}
    open_rows = tx.rows("SELECT package, first_seen_ms FROM patch_updates WHERE node = %s AND gone_ms IS NULL", [node])
    still = set()
    for package, first_seen in open_rows:
        if package in pending and pending[package]["first_seen_ms"] == first_seen:
            still.add(package)
        else:
            tx.run("UPDATE patch_updates SET gone_ms = %s WHERE node = %s AND package = %s AND first_seen_ms = %s",
                   [ts, node, package, first_seen])
    tx.many("INSERT INTO patch_updates (node, package, first_seen_ms, gone_ms, severity, fixed) VALUES {rows} "
            "ON CONFLICT DO NOTHING",
            [(node, package, u["first_seen_ms"], None, u.get("severity", "unspecified"), u.get("fixed") or "")
             for package, u in sorted(pending.items()) if package not in still])


def _posture(tx: Tx, node: str, body: dict[str, Any], ts: int) -> None:
    last = dict(tx.rows("SELECT p.check_id, p.status FROM posture_changes p WHERE p.node = %s AND p.ms = "
                        "(SELECT max(q.ms) FROM posture_changes q WHERE q.node = p.node AND q.check_id = p.check_id)",
                        [node]))
    tx.many("INSERT INTO posture_changes (node, check_id, ms, status, evidence) VALUES {rows} ON CONFLICT DO NOTHING",
            [(node, c["id"], ts, c["status"], c.get("evidence", "")[:300]) for c in body["checks"]
             if last.get(c["id"]) != c["status"]])

