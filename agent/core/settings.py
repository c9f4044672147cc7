"""What every config section shares: strict sections, durations, names, paths, and the rule that
one pass reports every problem (`every_problem`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

M = TypeVar("M", bound=BaseModel)

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

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A node id, topic prefix or device name: it becomes one level of an MQTT topic."""


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it becomes part of an MQTT topic)"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""An identifier that ends up in MQTT topics and JSON keys."""


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an address or "localhost") can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so typos never pass silently, and
    values are strict (TOML is typed: `enabled = "yes"` or `port = "502"` is a mistake, not a wish)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else (Path(base) / value)


def _path(value: object) -> object:
    return Path(value) if isinstance(value, str) and value else value


ConfigPath = Annotated[Path, BeforeValidator(_path), AfterValidator(_resolve)]
"""A file or folder path; relative ones are resolved against the config file's folder."""


Location = tuple[str | int, ...]
Problem = tuple[Location, str]
"""A rule broken inside a section: where (relative to the section) and what is wrong, with the fix."""


def every_problem(model: type[BaseModel], data: Any, handler: Callable[[Any], Any],
                  problems_of: Callable[[Any], list[Problem]]) -> Any:
    """For `@model_validator(mode="wrap")`: validate `data`, then report the section's own rules
    *together with* its fields' errors, so one bad port never hides a bad register.

    `problems_of(data)` receives the validated model, or the raw data when a field failed, and
    must check what it can of either (a raw dict may hold anything).
    """
    try:
        validated = handler(data)
        errors: list[dict[str, Any]] = []
    except ValidationError as exc:
        validated, errors = None, exc.errors()
    problems = problems_of(validated if validated is not None else data)
    if not errors and not problems:
        return validated
    lines = [_line_error(error) for error in errors] + [
        {"type": PydanticCustomError("config_problem", "{problem}", {"problem": text}), "loc": loc, "input": None}
        for loc, text in problems]
    raise ValidationError.from_exception_data(model.__name__, lines)  # type: ignore[arg-type]


def _line_error(error: dict[str, Any]) -> dict[str, Any]:
    line = {"type": error["type"], "loc": error["loc"], "input": error.get("input")}
    if error["type"] == "config_problem" or error["type"] not in _BUILTIN_TYPES:
        line["type"] = PydanticCustomError(error["type"], "{problem}", {"problem": error["msg"]})
    elif error.get("ctx"):
        line["ctx"] = error["ctx"]
    return line


_BUILTIN_TYPES = {"missing", "extra_forbidden", "literal_error", "less_than_equal", "greater_than_equal",
                  "less_than", "greater_than", "int_type", "float_type", "bool_type", "string_type",
                  "list_type", "dict_type", "model_type", "too_short", "too_long", "datetime_type", "path_type",
                  "int_from_float", "string_too_short", "string_too_long"}


def valid_model(model: type[M], raw: Any) -> M | None:
    """`raw` validated as `model`, or None (its errors are reported where it is a field)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def valid_fields(model: type[BaseModel], raw: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Those of `names` that validate on their own in `raw` (absent ones take their defaults),
    for checking a section's rules while another of its fields is wrong."""
    out: dict[str, Any] = {}
    for name in names:
        field = model.model_fields[name]
        if name not in raw:
            if not field.is_required():
                out[name] = field.get_default(call_default_factory=True)
            continue
        try:
            out[name] = TypeAdapter(Annotated[field.annotation, field], config=_STRICT).validate_python(raw[name])
        except ValidationError:
            pass
    return out


_STRICT = ConfigDict(strict=True)
