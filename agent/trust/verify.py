"""The consumer's verifier: the pure `open_envelope` plus the memory it cannot have.

`Verifier.check(payload, topic)` adds to the stateless checks (with the consumer's bridge
prefixes, agent.trust.bridge): duplicates and replays per node (agent.trust.replay; its state
may be persisted, see `replay_state`), and following key rotations: a verified rotation
notice (kind "key", signed by a trusted key) makes the announced key trusted for the same
node ids, and is written to the trust store folder when one is given, so it survives a
restart. A rotation notice is outside the sequence guard (it is sealed with number 0 by
`keygen --rotate`, and stays true however often it is repeated): it is a `duplicate` once the
key it announces is trusted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.trust import envelope, keys, rotation
from agent.trust.bridge import Bridges
from agent.trust.replay import Limits, ReplayGuard, ReplayState

log = logging.getLogger(__name__)

# The defaults of `edge-agent verify` and `edge-agent board` (docs/protocol.md).
MAX_SKEW_MS = 300_000  # 5 minutes ahead of the consumer's clock
MAX_AGE_MS = 7 * 86_400_000  # 7 days behind it: the longest broker outage the agents' spool bridges


class Verifier:
    def __init__(self, trust: keys.TrustStore, *, max_skew_ms: int | None = MAX_SKEW_MS,
                 max_age_ms: int | None = MAX_AGE_MS, recent_messages: int = Limits.recent,
                 follow_rotations: bool = True, trust_dir: Path | None = None,
                 clock: Callable[[], float] = time.time, replay_state: ReplayState | None = None,
                 check_replays: bool = True, bridges: Bridges = envelope.NO_BRIDGES) -> None:
        # check_replays=False: the caller keeps duplicates and replays apart itself (the fleet
        # store does, exactly, across ingest processes and restarts); this process's memory
        # would see only its share of each node's messages.
        self.trust = trust
        self.bridges = bridges
        self.max_skew_ms = max_skew_ms
        self.max_age_ms = max_age_ms
        self.follow_rotations = follow_rotations
        self.trust_dir = trust_dir
        self.guard = ReplayGuard(replay_state, Limits(recent=recent_messages)) if check_replays else None
        self._clock = clock

    def check(self, payload: bytes, topic: str) -> envelope.Verdict:
        verdict = envelope.open_envelope(
            payload, topic, self.trust, now_ms=int(self._clock() * 1000),
            max_skew_ms=self.max_skew_ms, max_age_ms=self.max_age_ms, bridges=self.bridges)
        if not verdict.valid:
            return verdict
        fields = verdict.fields
        assert fields is not None
        if fields["kind"] == rotation.KIND:
            return self._rotation(verdict)
        if self.guard is None:
            return verdict
        # Keyed on the signed topic: one message arriving under two bridge prefixes is one message.
        reason = self.guard.admit(fields["node"], fields["seq"], fields["sig"], fields["topic"])
        if reason is None:
            return verdict
        seq, node = fields["seq"], fields["node"]
        if reason == envelope.DUPLICATE:
            detail = f"the same message as seq {seq} of node {node!r}, accepted before (a resend or a retained copy)"
        else:
            detail = (f"seq {seq} of node {node!r} on {topic!r} was accepted before, or lies below what this "
                      "consumer remembers of that topic: an old message sent again, or a second one under its number")
        return replace(verdict, valid=False, reason=reason, detail=detail[:300])

    def _rotation(self, verdict: envelope.Verdict) -> envelope.Verdict:
        fields = verdict.fields
        assert fields is not None
        announced = rotation.parse_rotation(fields["body"])
        if isinstance(announced, str):
            return replace(verdict, valid=False, reason=envelope.MALFORMED, detail=announced)
        old = self.trust.keys[fields["kid"]]
        known = self.trust.keys.get(keys.key_id(announced))
        if known is not None and (known.nodes is None or (old.nodes is not None and old.nodes <= known.nodes)):
            return replace(verdict, valid=False, reason=envelope.DUPLICATE,
                           detail=f"key {fields['body']['new_kid']} is already trusted for these nodes")
        if self.follow_rotations:
            self._follow(fields, announced, old)
        return verdict

    def _follow(self, fields: dict, announced: Ed25519PublicKey, old: keys.TrustedKey) -> None:
        new_kid = self.trust.add(announced, old.nodes, announced_by=fields["kid"])
        if self.trust_dir is not None:
            try:
                for node in sorted(old.nodes or {fields["node"]}):
                    keys.write_trusted(self.trust_dir, node, announced, announced_by=fields["kid"])
            except OSError as exc:  # still trusted in memory; the retained notice teaches it again
                log.warning("cannot record rotated key kid=%s trust_dir=%s error=%s", new_kid, self.trust_dir,
                            exc.strerror)
        log.info("key rotation followed node=%s old_kid=%s new_kid=%s", fields["node"], fields["kid"], new_kid)
