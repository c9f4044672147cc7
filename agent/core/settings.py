"""Small value types shared by every config section (kept apart to avoid import cycles)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as "500ms", "30s", "5m", "2h", "7d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, \"30s\", \"5m\" or \"7d\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write 30, \"30s\", \"5m\", \"2h\" or \"7d\"")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; TOML may write a number of seconds or a string with a unit."""

PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it becomes part of an MQTT topic)"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""An identifier that ends up in MQTT topics and JSON keys."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else (Path(base) / value)


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
"""A file or folder path; relative ones are resolved against the config file's folder."""
