"""The fleet board's memory: each node's latest verified messages, what failed verification,
the agent's own verdict and the board's recomputation of it, and a verdict timeline.

Plain data in, plain data out: feed it `(topic, Verdict, received_ms)` and ask for a JSON-ready
snapshot at a given time. No clock, no sockets, no locks (the shell holds one).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agent.readiness import model as readiness
from agent.readiness.policy import Policy
from agent.trust import envelope

SILENT_AFTER_S = 120.0  # default: a node not heard from for this long shows silent
QUIET_REASONS = (envelope.DUPLICATE,)  # a QoS 1 redelivery or the 2nd subscription's copy: nothing new


@dataclass
class Rejection:
    received_ms: int
    reason: str
    detail: str
    topic: str


@dataclass
class NodeState:
    node: str
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # stream -> envelope fields + received_ms
    last_heard_ms: int | None = None
    rejections: deque[Rejection] = field(default_factory=lambda: deque(maxlen=200))
    policy: Policy = field(default_factory=Policy)
    agent: dict[str, Any] | None = None  # the node's own verdict, its ts, and whether the board agrees
    disagreement: str | None = None  # why the latest agent verdict does not match its own messages
    timeline: list[tuple[int, str, str, str]] = field(default_factory=list)  # (ms, level, security, operations)

    def rejected_counts(self, since_ms: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rejection in self.rejections:
            if rejection.received_ms >= since_ms:
                counts[rejection.reason] = counts.get(rejection.reason, 0) + 1
        return counts


def stream_of(topic: str) -> tuple[str, str] | None:
    """(node, stream) of `<prefix>/<node>/<kind>[/<subject>]`, or None."""
    levels = topic.split("/")
    if len(levels) < 3 or not levels[1]:
        return None
    return levels[1], "/".join(levels[2:])


def _old_news(verdict: envelope.Verdict) -> bool:
    """A retained message that verified but is older than what the board holds or accepts."""
    # A retained death or verdict of a node gone for longer than the verifier's max age is
    # authentic history; the node shows offline by silence anyway.
    return verdict.reason == envelope.REPLAY or (verdict.reason == envelope.CLOCK_SKEW and " ms old," in verdict.detail)


def _levels(body: dict[str, Any]) -> tuple[str, str, str, tuple]:
    reasons = tuple(sorted((r.get("code"), r.get("subject"), r.get("level")) for r in body.get("reasons") or []
                           if isinstance(r, dict)))
    return body.get("level"), body.get(readiness.SECURITY), body.get(readiness.OPERATIONS), reasons


class FleetState:
    def __init__(self, *, started_ms: int, silent_after_ms: int = int(SILENT_AFTER_S * 1000), history_ms: int = 6 * 3600_000,
                 rejected_window_ms: int = 3600_000, max_timeline: int = 2000, max_streams: int = 256,
                 max_unverified_nodes: int = 256) -> None:
        # The caps bound what others can make the board remember: a node may only add streams
        # up to `max_streams`, and names seen only in forgeries get `max_unverified_nodes` rows.
        self.max_streams = max_streams
        self.max_unverified_nodes = max_unverified_nodes
        self.started_ms = started_ms
        self.silent_after_ms = silent_after_ms
        self.history_ms = history_ms
        self.rejected_window_ms = rejected_window_ms
        self.max_timeline = max_timeline
        self.nodes: dict[str, NodeState] = {}
        self.connected = False
        self.connected_since_ms: int | None = None
        self.accepted = 0
        self.rejected = 0
        self.unattributed: deque[Rejection] = deque(maxlen=200)
        self.ignored_streams = 0

    # ------------------------------------------------------------------ input

    def set_connected(self, connected: bool, now_ms: int) -> None:
        if connected != self.connected:
            self.connected, self.connected_since_ms = connected, now_ms

    def ingest(self, topic: str, verdict: envelope.Verdict, received_ms: int, retained: bool = False) -> None:
        if not verdict.valid:
            self._reject(topic, verdict, received_ms, retained)
            return
        fields = verdict.fields or {}
        where = stream_of(topic)
        if where is None:
            return
        node, stream = where
        state = self.nodes.get(node) or self.nodes.setdefault(node, NodeState(node))
        self.accepted += 1
        if stream not in state.latest and len(state.latest) >= self.max_streams:
            self.ignored_streams += 1
            return
        # The last message received wins, even with an older timestamp: the Last Will is
        # sealed when the agent starts and must still replace the birth it follows.
        state.latest[stream] = {**fields, "received_ms": received_ms}
        heard = max(fields["ts"], self.started_ms) if retained else received_ms
        state.last_heard_ms = max(state.last_heard_ms or 0, heard)
        if fields["kind"] == "readiness":
            self._take_agent_verdict(state, fields)

    def _reject(self, topic: str, verdict: envelope.Verdict, received_ms: int, retained: bool) -> None:
        if verdict.reason in QUIET_REASONS or (retained and _old_news(verdict)):
            return  # a retained copy of something already seen, or too old to judge: not an attack
        self.rejected += 1
        rejection = Rejection(received_ms, verdict.reason or "invalid", verdict.detail[:200], topic[:200])
        where = stream_of(topic)
        state = self.nodes.get(where[0]) if where else None
        if state is None and where is not None and self._unverified_nodes() < self.max_unverified_nodes:
            state = self.nodes[where[0]] = NodeState(where[0])
        if state is None:
            self.unattributed.append(rejection)
            return
        state.rejections.append(rejection)

    def _unverified_nodes(self) -> int:
        return sum(not state.latest for state in self.nodes.values())

    def _take_agent_verdict(self, state: NodeState, fields: dict[str, Any]) -> None:
        body = fields["body"]
        state.policy = Policy.from_body(body.get("policy"))
        claimed = body.get("verdict") if isinstance(body.get("verdict"), dict) else {}
        inputs = body.get("inputs") if isinstance(body.get("inputs"), dict) else {}
        agreement, board_view = "unchecked", None
        if inputs and all(state.latest.get(s, {}).get("seq") == seq for s, seq in inputs.items()):
            # The board holds exactly what the agent judged: recompute at the agent's moment.
            held = {s: state.latest[s] for s in inputs}
            board_view = readiness.evaluate(held, state.policy, fields["ts"]).as_body()
            agreement = "agrees" if _levels(board_view) == _levels(claimed) else "disagrees"
        state.agent = {"ts": fields["ts"], "verdict": claimed, "agreement": agreement, "board": board_view}
        state.disagreement = None
        if agreement == "disagrees":
            assert board_view is not None
            state.disagreement = (f"the agent's signed verdict says {claimed.get('level')} (security "
                                  f"{claimed.get('security')}, operations {claimed.get('operations')}); its own "
                                  f"messages say {board_view['level']} (security {board_view['security']}, "
                                  f"operations {board_view['operations']})")

    # ------------------------------------------------------------------ output

    def evaluate(self, state: NodeState, now_ms: int) -> readiness.Readiness:
        verified = {s: m for s, m in state.latest.items() if s.split("/", 1)[0] in readiness.INPUT_KINDS}
        return readiness.evaluate(verified, state.policy, now_ms, last_heard_ms=state.last_heard_ms,
                                  silent_after_ms=self.silent_after_ms,
                                  rejected=state.rejected_counts(now_ms - self.rejected_window_ms),
                                  disagreement=state.disagreement)

    def tick(self, now_ms: int) -> None:
        """Evaluate every node and extend the timelines; call it every few seconds."""
        for state in self.nodes.values():
            self._record(state, self.evaluate(state, now_ms), now_ms)

    def _record(self, state: NodeState, verdict: readiness.Readiness, now_ms: int) -> None:
        point = (now_ms, verdict.level, verdict.lens(readiness.SECURITY), verdict.lens(readiness.OPERATIONS))
        if not state.timeline or state.timeline[-1][1:] != point[1:]:
            state.timeline.append(point)
        horizon = now_ms - self.history_ms
        # Keep the last point before the horizon: it says what the window started with.
        while len(state.timeline) > 1 and (state.timeline[1][0] <= horizon or len(state.timeline) > self.max_timeline):
            state.timeline.pop(0)

    def node_row(self, state: NodeState, now_ms: int) -> dict[str, Any]:
        verdict = self.evaluate(state, now_ms)
        self._record(state, verdict, now_ms)
        status = state.latest.get("status", {}).get("body", {})
        counts = state.rejected_counts(now_ms - self.rejected_window_ms)
        last = state.rejections[-1] if state.rejections else None
        online = not any(r.code in ("node_offline", "node_silent") for r in verdict.reasons) and bool(state.latest)
        return {
            "node": state.node,
            "site": status.get("site", ""), "area": status.get("area", ""),
            "verified": bool(state.latest),
            "online": online,
            "last_heard_ms": state.last_heard_ms,
            **verdict.as_body(),
            "criticality": state.policy.node.criticality, "process": state.policy.node.process,
            "unverified": {"count": sum(counts.values()), "by_reason": counts,
                           "last": None if last is None else vars(last)},
            "agent": state.agent,
            "timeline": [{"ms": t, "level": lv, "security": s, "operations": o} for t, lv, s, o in state.timeline],
        }

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        rows = [self.node_row(s, now_ms) for s in self.nodes.values()]
        rows.sort(key=lambda r: (-readiness.LEVELS.index(r["level"]), r["node"]))
        counts = {level: sum(r["level"] == level for r in rows) for level in readiness.LEVELS}
        return {
            "now_ms": now_ms,
            "broker": {"connected": self.connected, "since_ms": self.connected_since_ms},
            "counts": counts,
            "messages": {"verified": self.accepted, "rejected": self.rejected,
                         "ignored_streams": self.ignored_streams},
            "unattributed_rejections": [vars(r) for r in self.unattributed][-20:],
            "nodes": rows,
        }

    def node_detail(self, node: str, now_ms: int) -> dict[str, Any] | None:
        state = self.nodes.get(node)
        if state is None:
            return None
        latest = state.latest
        devices = []
        for stream in sorted(s for s in latest if s.startswith("modbus/")):
            name, body = stream.split("/", 1)[1], latest[stream]["body"]
            asset = state.policy.device(name)
            devices.append({"name": name, "ts": latest[stream]["ts"], "status": body.get("status"),
                            "values": body.get("values"), "units": body.get("units"),
                            "identity": body.get("identity"), "criticality": asset.criticality,
                            "process": asset.process, "max_downtime_s": asset.max_downtime_s})
        return {
            **self.node_row(state, now_ms),
            "devices": devices,
            "host": latest.get("host", {}).get("body"),
            "patches": latest.get("patches", {}).get("body"),
            "posture": latest.get("posture", {}).get("body"),
            "status_body": latest.get("status", {}).get("body"),
            "streams": {s: {"ts": m["ts"], "seq": m["seq"], "received_ms": m["received_ms"], "kid": m["kid"]}
                        for s, m in sorted(latest.items())},
            "rejections": [vars(r) for r in state.rejections][-50:],
            "policy": state.policy.to_body(),
        }
