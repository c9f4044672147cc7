"""The [spool] section: sizes with units, durations, and sane limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.config import validate
from agent.delivery.config import SpoolConfig, parse_size


@pytest.mark.parametrize("text,expected", [
    (131072, 131072), ("64KiB", 65536), ("128MiB", 128 * 1024**2), ("1GiB", 1024**3),
    ("500MB", 500_000_000), ("1.5 MiB", int(1.5 * 1024**2)),
])
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-1MiB", "12 parsecs", True, -5])
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_section_in_the_agent_config() -> None:
    config = validate({"node": {"id": "n"}, "signing": {"key_file": "k"},
                       "spool": {"max_bytes": "64MiB", "max_age": "2d", "sync": "full"}}, "test")
    assert (config.spool.max_bytes, config.spool.max_age, config.spool.sync) == (64 * 1024**2, 172800.0, "full")
    assert config.spool.inflight == 64


def test_unknown_sync_mode_is_refused() -> None:
    with pytest.raises(ValidationError):
        SpoolConfig(sync="sometimes")


def test_spool_and_memory_queue_have_a_floor_and_the_reserve_may_be_off() -> None:
    with pytest.raises(ValidationError, match="the spool needs at least 256KiB"):
        SpoolConfig(max_bytes="64KiB")
    with pytest.raises(ValidationError, match="the memory queue needs at least 64KiB"):
        SpoolConfig(memory_bytes=1000)
    config = SpoolConfig(min_free="0", memory_bytes="1MiB")
    assert (config.min_free, config.memory_bytes) == (0, 1024**2)
    assert SpoolConfig().min_free == 256 * 1024**2
