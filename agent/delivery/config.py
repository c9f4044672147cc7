"""The `[spool]` config section: disk budget, durability and drain window of the spool."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from agent.core.settings import PositiveDuration, Section

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_UNIT_BYTES = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size(value: object) -> int:
    """Bytes from an integer or a string such as "64MiB", "500MB" or "1GiB"."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 67108864 or \"64MiB\"")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(float(match.group(1)) * _UNIT_BYTES[match.group(2)])
    else:
        raise ValueError(f"{value!r} is not a size: write a number of bytes or \"64MiB\", \"1GiB\"")
    if size < 64 * 1024:
        raise ValueError("the spool needs at least 64KiB")
    return size


ByteSize = Annotated[int, BeforeValidator(parse_size)]


class SpoolConfig(Section):
    """Store-and-forward spool in `state_dir`: every message waits here until the broker acks it."""

    max_bytes: ByteSize = Field(
        128 * 1024**2, description="budget for queued messages (topic + payload bytes), e.g. \"128MiB\""
    )
    max_age: PositiveDuration = Field(7 * 86400.0, description="messages older than this are dropped, e.g. \"7d\"")
    sync: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite synchronous mode: \"normal\" (WAL, fsync at checkpoints; a power cut may lose the "
        "last moments of messages) or \"full\" (fsync every write: nothing accepted is lost, more eMMC wear)",
    )
    inflight: int = Field(64, ge=1, le=1000, description="messages handed to MQTT and not yet acknowledged")
    stop_timeout: PositiveDuration = Field(10.0, description="how long a stop waits to flush the backlog")
    report_interval: PositiveDuration = Field(
        60.0, description="how often the node publishes its status (spool depth, drops, collectors)"
    )
