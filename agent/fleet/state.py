"""The board's rules, as pure functions over plain data: which message is a node's newest on a
stream, when a node was last heard, whether the agent's own verdict matches its messages, and
the board's verdict for a node. The fleet store (agent.fleet.store) keeps the data and calls
these; no clock, no sockets, no database here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.readiness import model as readiness
from agent.readiness.policy import CRITICALITIES, Policy
from agent.trust import envelope

REJECTED_WINDOW_S = 3600.0  # failed verifications this recent count against a node's security lens
TIMELINE_S = 6 * 3600.0  # how much verdict history a row on the board shows
QUIET_REASONS = (envelope.DUPLICATE,)  # a QoS 1 redelivery or the 2nd subscription's copy: nothing new


def stream_of(topic: str) -> tuple[str, str] | None:
    """(node, stream) of `<prefix>/<node>/<kind>[/<subject>]`, or None."""
    levels = topic.split("/")
    if len(levels) < 3 or not levels[1]:
        return None
    return levels[1], "/".join(levels[2:])


def old_news(verdict: envelope.Verdict) -> bool:
    """A retained message that verified but is older than what the board accepts."""
    # A retained death or verdict of a node gone for longer than the verifier's max age is
    # authentic history; the node shows offline by silence anyway.
    return verdict.reason == envelope.REPLAY or (verdict.reason == envelope.CLOCK_SKEW and " ms old," in verdict.detail)


@dataclass(frozen=True)
class Held:
    """What decides which of two messages on one stream is the newer."""

    kind: str
    session: str
    seq: int
    ts_ms: int
    received_ms: int


def newer(candidate: Held, held: Held) -> bool:
    """Whether `candidate` replaces `held` as its stream's latest message.

    Status: the last received wins, because the Last Will is sealed when a connection opens
    and must still replace the birth and periodic reports it arrives after. Every other
    stream: the higher sequence number (a node's numbers grow across its sessions), or, from
    another session, the newer timestamp (a node whose state was wiped starts again at 1).
    agent.fleet.store.writes.NEWER_SQL says the same in SQL; a test holds them together.
    """
    if candidate.kind == "status":
        return candidate.received_ms >= held.received_ms
    return candidate.seq > held.seq or (candidate.session != held.session and candidate.ts_ms > held.ts_ms)


def heard_ms(ts_ms: int, received_ms: int, retained: bool, started_ms: int) -> int:
    """When a message says the node was last alive: a retained copy handed out at subscribe
    time says so no later than it was sealed, and no earlier than this board started."""
    return max(ts_ms, started_ms) if retained else received_ms


def agent_view(fields: dict[str, Any], held: dict[str, dict[str, Any]], policy: Policy
               ) -> tuple[dict[str, Any], str | None]:
    """The node's own signed verdict (a `readiness` message's fields), checked against what
    the board holds: `held` maps stream -> {seq, ts, body} of the node's latest messages.

    Returns the row's `agent` part (ts, verdict, agreement, board) and, when the board's
    recomputation at the agent's moment disagrees, why in words.
    """
    body = fields["body"]
    claimed = body.get("verdict") if isinstance(body.get("verdict"), dict) else {}
    inputs = body.get("inputs") if isinstance(body.get("inputs"), dict) else {}
    agreement, board_view, disagreement = "unchecked", None, None
    if inputs and all(held.get(s, {}).get("seq") == seq for s, seq in inputs.items()):
        # The board holds exactly what the agent judged: recompute at the agent's moment.
        board_view = readiness.evaluate({s: held[s] for s in inputs}, policy, fields["ts"]).as_body()
        agreement = "agrees" if _levels(board_view) == _levels(claimed) else "disagrees"
    if agreement == "disagrees":
        assert board_view is not None
        disagreement = (f"the agent's signed verdict says {claimed.get('level')} (security "
                        f"{claimed.get('security')}, operations {claimed.get('operations')}); its own "
                        f"messages say {board_view['level']} (security {board_view['security']}, "
                        f"operations {board_view['operations']})")
    return ({"ts": fields["ts"], "verdict": claimed, "inputs": inputs, "agreement": agreement, "board": board_view},
            disagreement)


def recheck(agent: dict[str, Any], held: dict[str, dict[str, Any]], policy: Policy
            ) -> tuple[dict[str, Any], str | None] | None:
    """An unchecked agent verdict checked again, now that the board may hold its inputs (they can
    arrive after the verdict, through another ingest process); None while it still cannot be."""
    if agent.get("agreement") != "unchecked" or not agent.get("inputs"):
        return None
    again = agent_view({"ts": agent["ts"], "body": {"verdict": agent["verdict"], "inputs": agent["inputs"]}},
                       held, policy)
    return None if again[0]["agreement"] == "unchecked" else again


def _levels(body: dict[str, Any]) -> tuple[Any, Any, Any, tuple]:
    reasons = tuple(sorted((r.get("code"), r.get("subject"), r.get("level")) for r in body.get("reasons") or []
                           if isinstance(r, dict)))
    return body.get("level"), body.get(readiness.SECURITY), body.get(readiness.OPERATIONS), reasons


def evaluate(latest: dict[str, dict[str, Any]], policy: Policy, now_ms: int, *, last_heard_ms: int | None,
             silent_after_ms: int, rejected: dict[str, int], disagreement: str | None) -> readiness.Readiness:
    """The board's verdict for one node from its latest verified messages (stream -> {ts, body})."""
    return readiness.evaluate(readiness.inputs_of(latest), policy, now_ms, last_heard_ms=last_heard_ms,
                              silent_after_ms=silent_after_ms, rejected=rejected, disagreement=disagreement)


DEVICE_CODES = ("device_offline", "device_stale", "device_degraded", "device_no_data")


def device_summary(policy: Policy, reasons: list[dict[str, Any]], online: bool) -> dict[str, Any]:
    """What a node's row says about its devices without a click: how many, how many are not
    reading, and the worst of them (by level, then criticality). While the node itself is
    offline or silent its devices' state is unknown (`reading` None)."""
    troubled = [r for r in reasons if r.get("code") in DEVICE_CODES]
    names = set(policy.devices) | {r.get("subject", "") for r in troubled}
    if not online:
        return {"count": len(names), "reading": None, "worst": None}
    rank = {c: i for i, c in enumerate(reversed(CRITICALITIES))}
    worst = max(troubled, default=None, key=lambda r: (readiness.LEVELS.index(r["level"]),
                                                       rank.get(policy.device(r.get("subject", "")).criticality, 0)))
    return {"count": len(names), "reading": len(names) - len({r.get("subject") for r in troubled}),
            "worst": None if worst is None else {"name": worst.get("subject", ""), "level": worst["level"],
                                                 "text": worst["text"]}}


def online(verdict: readiness.Readiness, verified: bool) -> bool:
    return verified and not any(r.code in ("node_offline", "node_silent") for r in verdict.reasons)
