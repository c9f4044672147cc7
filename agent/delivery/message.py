"""What the spool and the in-memory queue carry: a sealed message, and one handed out to publish."""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.reading import Priority


@dataclass(frozen=True)
class Message:
    """One sealed message on its way to the broker."""

    topic: str
    payload: bytes
    stream: str
    priority: Priority = Priority.STATE
    retain: bool = False

    @property
    def size(self) -> int:
        """What it costs the spool's byte count: topic plus payload."""
        return len(self.topic.encode()) + len(self.payload)


@dataclass(frozen=True)
class Spooled:
    """A queued message handed out to the publisher, under its queue id (acked by that id)."""

    id: int
    stream: str
    topic: str
    payload: bytes
    retain: bool
