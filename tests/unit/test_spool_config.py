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


@pytest.mark.parametrize("bad", ["lots", "-1MiB", "12 parsecs", True, 1000])
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
