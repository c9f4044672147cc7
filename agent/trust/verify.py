"""The consumer's verifier: the pure `open_envelope` plus the memory it cannot have.

`Verifier.check(payload, topic)` adds to the stateless checks: duplicates and replays per
(node, session) (agent.trust.replay), and following key rotations: a verified rotation notice
(kind "key", signed by a trusted key) makes the announced key trusted for the same node
ids, and is written to the trust store folder when one is given, so it survives a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agent.trust import envelope, keys, rotation
from agent.trust.replay import ReplayGuard

log = logging.getLogger(__name__)


class Verifier:
    def __init__(self, trust: keys.TrustStore, *, max_skew_ms: int | None = 300_000,
                 max_age_ms: int | None = 7 * 86_400_000, recent_messages: int = 256,
                 follow_rotations: bool = True, trust_dir: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.trust = trust
        self.max_skew_ms = max_skew_ms
        self.max_age_ms = max_age_ms
        self.follow_rotations = follow_rotations
        self.trust_dir = trust_dir
        self.guard = ReplayGuard(recent_messages)
        self._clock = clock

    def check(self, payload: bytes, topic: str) -> envelope.Verdict:
        # A retained rotation notice may be old and still true: it has no age limit.
        is_notice = topic.count("/") == 2 and topic.endswith(f"/{rotation.KIND}")
        verdict = envelope.open_envelope(
            payload, topic, self.trust, now_ms=int(self._clock() * 1000),
            max_skew_ms=self.max_skew_ms, max_age_ms=None if is_notice else self.max_age_ms)
        if not verdict.valid:
            return verdict
        fields = verdict.fields
        assert fields is not None
        reason = self.guard.admit(fields["node"], fields["session"], fields["seq"], fields["sig"], topic)
        if reason is not None:
            return replace(verdict, valid=False, reason=reason,
                           detail=f"seq {fields['seq']} of session {fields['session'][:64]!r}")
        if fields["kind"] == rotation.KIND and self.follow_rotations:
            return self._follow(verdict)
        return verdict

    def _follow(self, verdict: envelope.Verdict) -> envelope.Verdict:
        fields = verdict.fields
        assert fields is not None
        announced = rotation.parse_rotation(fields["body"])
        if isinstance(announced, str):
            return replace(verdict, valid=False, reason=envelope.MALFORMED, detail=announced)
        old = self.trust.keys[fields["kid"]]
        new_kid = self.trust.add(announced, old.nodes, announced_by=fields["kid"])
        if self.trust_dir is not None:
            try:
                for node in sorted(old.nodes or {fields["node"]}):
                    keys.write_trusted(self.trust_dir, node, announced, announced_by=fields["kid"])
            except OSError as exc:  # still trusted in memory; the retained notice teaches it again
                log.warning("cannot record rotated key kid=%s trust_dir=%s error=%s", new_kid, self.trust_dir,
                            exc.strerror)
        log.info("key rotation followed node=%s old_kid=%s new_kid=%s", fields["node"], fields["kid"], new_kid)
        return verdict
