"""The one shape every collector produces: plain data, no identity, no signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Priority(IntEnum):
    """What the spool sends first and keeps longest when it must drop something (higher wins)."""

    BULK = 0  # periodic telemetry: the next cycle replaces it
    STATE = 1  # host health, device status changes
    SECURITY = 2  # patches, posture, node status
    TRUST = 3  # key rotation notices: consumers need one before anything signed by the new key


@dataclass(frozen=True)
class Reading:
    """One message's worth of data from a collector.

    `kind` names the collector family ("host", "modbus", "patches", ...); `subject`
    narrows it to one thing the collector watches (a Modbus device name) or is "".
    The topic is `<prefix>/<node>/<kind>[/<subject>]`.
    """

    kind: str
    body: dict[str, Any]
    subject: str = ""
    priority: Priority = Priority.STATE
    retain: bool = False
    ts_ms: int | None = field(default=None)  # when the data was taken; None = at sealing

    @property
    def stream(self) -> str:
        return f"{self.kind}/{self.subject}" if self.subject else self.kind
