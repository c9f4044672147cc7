"""Readings become signed spool Messages: topic, next persisted sequence number, Ed25519 envelope."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from agent.config import Config
from agent.core.reading import Reading
from agent.delivery.session import Session
from agent.delivery.spool import Message
from agent.trust import envelope, keys


def topic_for(prefix: str, node: str, stream: str) -> str:
    return f"{prefix}/{node}/{stream}"


def config_digest(config: Config) -> str:
    """A short fingerprint of the running config, so the fleet sees which nodes differ."""
    return hashlib.sha256(envelope.canonical(config.model_dump(mode="json"))).hexdigest()[:16]


class Sealer:
    """Turns Readings into signed spool Messages; every message takes the next persisted seq."""

    def __init__(self, config: Config, private_key, session: Session,
                 clock: Callable[[], float] = time.time) -> None:
        self.private_key = private_key
        self.kid = keys.key_id(private_key.public_key())
        self.node = config.node.id
        self.prefix = config.mqtt.topic_prefix
        self.session = session
        self._clock = clock
        self._own = keys.TrustStore()
        self._own.add(private_key.public_key())

    def vouches_for(self, topic: str, payload: bytes) -> bool:
        """Whether `payload` is a message this node sealed, intact: the test a message salvaged
        from a damaged spool must pass before it is published again. A message of an earlier
        key (rotated since) only needs to be a well-formed envelope for `topic`."""
        verdict = envelope.open_envelope(payload, topic, self._own)
        if verdict.valid:
            return True
        fields = verdict.fields
        return (verdict.reason == envelope.UNKNOWN_KEY and fields is not None and fields["node"] == self.node
                and fields["topic"] == topic and envelope.signed_bytes(payload, fields["sig"]) is not None)

    def seal(self, reading: Reading) -> Message:
        return self.seal_stamped(reading)[0]

    def seal_stamped(self, reading: Reading) -> tuple[Message, int, int]:
        """The sealed message with the sequence number and timestamp inside it (what the
        readiness verdict keeps of it: no need to parse the bytes again)."""
        topic = topic_for(self.prefix, self.node, reading.stream)
        seq, ts_ms = self.session.next_seq(), reading.ts_ms or int(self._clock() * 1000)
        payload = envelope.seal(
            self.private_key, kid=self.kid, node=self.node, topic=topic, kind=reading.kind,
            session=self.session.session, seq=seq, ts_ms=ts_ms, body=reading.body,
        )
        return Message(topic, payload, reading.stream, reading.priority, reading.retain), seq, ts_ms
