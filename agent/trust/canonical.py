"""RFC 8785 (JCS) canonical JSON: writing it, and reading JSON that must be written so.
Pure functions only.

`read` is stricter than `json.loads`: UTF-8 only (no UTF-16/32 guessing, no encoded
surrogates), no `NaN`/`Infinity`, no number beyond the range of a double, no duplicate
names, no lone surrogates in strings (RFC 8785 section 3.2.2.2 and I-JSON forbid them). A
leading byte order mark is skipped while parsing (RFC 8259 lets parsers ignore it), so that
the canonical check, which it fails, is what reports it.

The canonical check is fast where it can be. The C `json.dumps` (sorted keys, no
whitespace, no ASCII escaping) writes the same text as JCS except for (a) numbers Python
spells differently: integral floats ("5.0" for 5), two-digit exponents ("1e-05", "1e-07" for
0.00001, 1e-7), exponents 16 to 20 ("1e+16" for 10000000000000000) and integers of 16 digits
or more (beyond 2^53 a JSON number is the nearest double), which `_spelled_like_python` spots
in the received bytes; (b) member order when a name holds a character from U+E000 up (JCS
sorts by UTF-16 code units, Python by code points). So received text equal to json.dumps's,
with neither (a) nor (b) present, is canonical; anything else goes to the exact check: the
full JCS encoder. A false alarm of (a) inside a string only costs the exact check.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1
BOM = "\ufeff"

# Each pattern starts with a literal (a C-speed search). A number in Python's JSON ends before
# ",", "]", "}" or the end, and has a digit before its "e": so "127.0.0.1" or "line-0" inside
# a string raise no false alarm (each would cost the exact path).
_DOT_ZERO = re.compile(rb"\.0(?=[,\]}]|$)")
_PYTHON_EXPONENT = re.compile(rb"e(?:[-+]0|\+1[6-9](?![0-9])|\+20(?![0-9]))")
_DIGITS_AS_ZEROS = bytes(48 if 48 <= byte <= 57 else 46 for byte in range(256))  # for bytes.translate
_SORTS_DIFFERENTLY = re.compile("[\ue000-\U0010ffff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NeedsFullJcs(Exception):
    pass


def _fast_form(value: Any) -> Any:
    """Value ready for json.dumps such that its output equals JCS, or raise _NeedsFullJcs.

    JCS writes numbers as ECMAScript does: integral floats without ".0", and exponents
    outside [1e-6, 1e21). Python's repr agrees on the shortest digits for 1e-4 <= |x| < 1e16,
    so only those floats take the fast path; keys must be ASCII so code-point order equals
    JCS's UTF-16 order.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise _NeedsFullJcs
            out[key] = _fast_form(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_fast_form(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is beyond 2^53: send it as a string")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be sent: JSON has no NaN or infinity")
        if value.is_integer():
            if abs(value) <= MAX_SAFE_INTEGER:
                return int(value)
        elif 1e-4 <= abs(value) < 1e16:
            return value
        raise _NeedsFullJcs
    raise TypeError(f"cannot put a {type(value).__name__} in a message")


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of `value` (integers beyond 2^53 refused: send strings)."""
    quick = _written_by_python(value)
    if quick is not None:
        return quick
    try:
        form = _fast_form(value)
    except _NeedsFullJcs:
        return rfc8785.dumps(value)
    return json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _written_by_python(value: Any) -> bytes | None:
    """The C encoder's text of `value` when it is surely JCS (the test `read` applies to what
    it receives), else None. The encoder writes non-string names as strings (JCS refuses
    them), so those are looked for first; anything it refuses goes to the exact path too."""
    if not _names_are_strings(value):
        return None
    try:
        text = _PYTHON_JCS.encode(value)
    except (ValueError, TypeError):
        return None
    payload = text.encode()  # a lone surrogate raises here, as on the exact path
    if _spelled_like_python(payload) or not (text.isascii() or not _SORTS_DIFFERENTLY.search(text)):
        return None
    return payload


def _names_are_strings(value: Any) -> bool:
    if type(value) is dict:
        if not _STRING.issuperset(map(type, value)):
            return False
        items: Any = value.values()
    elif type(value) in _NESTED:
        items = value
    else:
        return True
    # Checked in C: most objects (a device's values) hold nothing nested.
    return _NESTED.isdisjoint(map(type, items)) or all(_names_are_strings(item) for item in items)


_STRING = frozenset({str})
_NESTED = frozenset({dict, list, tuple})


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two parsers could disagree on which value counts: refuse the text.
            raise ValueError(f"duplicate name {key[:40]!r}")
        out[key] = value
    return out


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# The quick parse keeps the last of duplicate names, which json.dumps then cannot write back
# as received: such text always takes the exact path, which parses strictly.
_QUICK_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
_PYTHON_JCS = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                               check_circular=False)


def _spelled_like_python(payload: bytes) -> bool:
    return bool(_DOT_ZERO.search(payload)
                or any(payload[at.start() - 1:at.start()].isdigit() for at in _PYTHON_EXPONENT.finditer(payload))
                or b"0" * 16 in payload.translate(_DIGITS_AS_ZEROS))


def _surely_canonical(payload: bytes, text: str, value: Any) -> bool:
    try:
        written = _PYTHON_JCS.encode(value)
    except ValueError:  # infinity: the exact path says what is wrong
        return False
    return (written == text and not _spelled_like_python(payload)
            and (text.isascii() or not _SORTS_DIFFERENTLY.search(text)))


def _as_doubles(value: Any) -> Any:
    """`value` with integers beyond 2^53 as the doubles a JSON number denotes."""
    if isinstance(value, dict):
        return {key: _as_doubles(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_doubles(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return float(value)
    return value


def _first_difference(got: bytes, wanted: bytes) -> int:
    low, high = 0, min(len(got), len(wanted))
    while low < high:  # bisect on prefixes: C-speed comparisons even for 256 KiB
        middle = (low + high) // 2
        if got[:middle + 1] == wanted[:middle + 1]:
            low = middle + 1
        else:
            high = middle
    return low


def _difference(payload: bytes, text: str, wanted: bytes) -> str | None:
    if payload == wanted:
        return None
    if text.startswith(BOM):
        return "starts with a byte order mark; the canonical form (RFC 8785) has none"
    at = _first_difference(payload, wanted)
    return (f"not the canonical form (RFC 8785): at byte {at} it reads {payload[at:at + 16]!r}, "
            f"the canonical form {wanted[at:at + 16]!r}")


def read(payload: bytes) -> tuple[Any, str | None]:
    """(value, None) when `payload` is exactly the JCS form of the JSON value it holds;
    (value, where it differs) when it is strict JSON in another form. ValueError (or
    RecursionError when nested too deep) saying why it is not strict JSON."""
    text = payload.decode("utf-8")
    unmarked = text[1:] if text.startswith(BOM) else text
    value = _QUICK_DECODER.decode(unmarked)
    if _surely_canonical(payload, text, value):
        return value, None
    value = _STRICT_DECODER.decode(unmarked)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        lone = _LONE_SURROGATE.search(json.dumps(value, ensure_ascii=False))
        if lone:
            raise ValueError(f"a string holds the lone surrogate \\u{ord(lone.group()):04x} (RFC 8785 forbids it)")
    try:
        wanted = canonical(_as_doubles(value))
    except ValueError:
        raise ValueError("a number is beyond the range of a double") from None
    return value, _difference(payload, text, wanted)
