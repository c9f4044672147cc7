"""Decode Modbus registers and bits into typed values, and encode them back (pure).

Byte order names follow the usual convention for a 32-bit value whose bytes, most
significant first, are A B C D:

    ABCD  registers [AB, CD]   big-endian words, big-endian bytes (the Modbus default)
    CDAB  registers [CD, AB]   word swap (low word first)
    BADC  registers [BA, DC]   byte swap inside each word
    DCBA  registers [DC, BA]   fully little-endian

The same rule extends to 64-bit values (word order reversed for CDAB/DCBA, bytes swapped
inside each word for BADC/DCBA) and to 16-bit values (BADC/DCBA swap the two bytes).
Strings are byte sequences: only the byte swap (BADC/DCBA) applies, never the word order.

Every decoding failure raises `CodecError`, whose `kind` becomes the point's error kind.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
DataType = Literal[
    "bool", "bit", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Value = bool | int | float | str

MAX_SAFE_INTEGER = 2**53 - 1
STRUCT_FORMAT = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}  # fmt: skip
_FIXED_WIDTH = {"bit": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
                "float32": 2, "float64": 4}  # fmt: skip


class CodecError(ValueError):
    """A register value that cannot become a reportable value; `kind` names why."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PointCodec:
    """How one point's raw registers or bit turn into its reported value."""

    type: DataType = "uint16"
    byte_order: ByteOrder = "ABCD"
    bit: int = 0  # for type "bit": 0 = least significant bit of the register
    length: int = 1  # for type "string": number of registers
    scale: float = 1.0
    offset: float = 0.0
    value_map: Mapping[int, str] = field(default_factory=dict)

    @functools.cached_property
    def decimals(self) -> int:
        """Places a scaled integer can have: raw x scale + offset has no more than these."""
        return max(_decimals(self.scale), _decimals(self.offset))

    @functools.cached_property
    def width(self) -> int:
        """Registers (or bits, for "bool") the point occupies."""
        if self.type == "bool":
            return 1
        if self.type == "string":
            return self.length
        return _FIXED_WIDTH[self.type]


def registers_to_bytes(registers: Sequence[int], order: ByteOrder) -> bytes:
    """The value's bytes, most significant first, from registers in `order`.

    Packing each register little-endian is the byte swap, so every order is one struct call.
    """
    words = registers if order in ("ABCD", "BADC") else registers[::-1]
    try:
        return struct.pack(f"{'>' if order in ('ABCD', 'CDAB') else '<'}{len(words)}H", *words)
    except struct.error:
        raise CodecError("malformed_reply", "register value outside 0..65535") from None


def bytes_to_registers(data: bytes, order: ByteOrder) -> list[int]:
    """Inverse of `registers_to_bytes`."""
    words = list(struct.unpack(f"{'>' if order in ('ABCD', 'CDAB') else '<'}{len(data) // 2}H", data))
    return words if order in ("ABCD", "BADC") else words[::-1]


def _decimals(number: float) -> int:
    """Decimal places of a scale or offset as written in the config (0.1 -> 1, 0.25 -> 2)."""
    text = repr(float(number))
    if "e" in text:
        return 15
    return len(text.split(".")[1].rstrip("0"))


def _shortest_float32(value: float, data: bytes) -> float:
    """The shortest decimal that is the same float32 (230.1, not 230.10000610351562)."""
    for digits in (6, 7, 8):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == data:
            return candidate
    return value


def _scaled(codec: PointCodec, raw: int | float) -> Value:
    if codec.scale == 1.0 and codec.offset == 0.0:
        if isinstance(raw, int) and abs(raw) > MAX_SAFE_INTEGER:
            return str(raw)  # JSON consumers (and RFC 8785) lose precision beyond 2^53
        return raw
    value = raw * codec.scale + codec.offset
    if not math.isfinite(value):
        raise CodecError("invalid_value", f"{raw} scaled to {value}")
    if isinstance(raw, int):  # 484 x 0.1 is 48.4, not 48.400000000000006
        return round(value, codec.decimals)
    return value


def decode(codec: PointCodec, registers: Sequence[int]) -> Value:
    """Value of a register-table point from exactly `codec.width` registers."""
    if len(registers) != codec.width:
        raise CodecError("malformed_reply", f"expected {codec.width} registers, got {len(registers)}")
    if codec.type == "string":  # a byte sequence: only the byte swap applies
        data = registers_to_bytes(registers, "BADC" if codec.byte_order in ("BADC", "DCBA") else "ABCD")
        return data.split(b"\0", 1)[0].decode("ascii", errors="replace").rstrip(" ")
    if codec.type == "bit":
        if not 0 <= registers[0] <= 0xFFFF:
            raise CodecError("malformed_reply", "register value outside 0..65535")
        return bool((registers[0] >> codec.bit) & 1)
    if codec.type == "bool":
        raise CodecError("config", "bool points live in coil or discrete tables")
    (raw,) = struct.unpack(STRUCT_FORMAT[codec.type], registers_to_bytes(registers, codec.byte_order))
    return finish(codec, raw)


def finish(codec: PointCodec, raw: float) -> Value:
    """The reported value of a fixed-width point from its raw number (as struct unpacked it)."""
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise CodecError("invalid_value", f"{codec.type} is {raw}")
        if codec.type == "float32":
            raw = _shortest_float32(raw, struct.pack(">f", raw))  # a finite float32 packs back to its bytes
        return _scaled(codec, raw)
    if codec.value_map and raw in codec.value_map:
        return codec.value_map[raw]
    return _scaled(codec, raw)


def decode_bit(codec: PointCodec, bit: bool) -> Value:
    """Value of a coil or discrete input."""
    if codec.value_map:
        return codec.value_map.get(int(bit), bool(bit))
    return bool(bit)


def encode(codec: PointCodec, value: bool | int | float | str) -> list[int]:
    """Registers a device holding `value` (before scale and offset) would serve.

    Used by the simulators and by tests; `decode(codec, encode(codec, v))` returns `v`
    when scale is 1, offset 0 and `v` is exactly representable.
    """
    if codec.type == "string":
        data = str(value).encode("ascii")[: codec.length * 2].ljust(codec.length * 2, b"\0")
        return bytes_to_registers(data, "BADC" if codec.byte_order in ("BADC", "DCBA") else "ABCD")
    if codec.type == "bit":
        return [(1 << codec.bit) if value else 0]
    if codec.type == "bool":
        raise CodecError("config", "bool points are bits, not registers")
    fmt = STRUCT_FORMAT[codec.type]
    number = float(value) if codec.type.startswith("float") else int(value)
    return bytes_to_registers(struct.pack(fmt, number), codec.byte_order)
