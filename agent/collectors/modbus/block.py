"""Decode every point of one register read at once (pure): the same values and errors as
`codec.decode` point by point, at a fraction of the cost.

The registers of the reply become bytes in one `struct.pack`, and every point stored big-endian
(byte order ABCD) with a fixed-width type comes out of one `struct.unpack` of a format that
skips the registers between them. Only the points that need it get more work: scale, offset,
value map, float checks, integers beyond 2^53. Strings, bits, other byte orders and points
overlapping an earlier one are decoded one by one, as are all points of a reply that does not
fit the read (wrong length, a value outside 0..65535), so every error stays the point's own.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from agent.collectors.modbus.codec import STRUCT_FORMAT, CodecError, PointCodec, Value, decode, finish

_PLAIN_TYPES = frozenset({"int16", "uint16", "int32", "uint32"})  # never beyond 2^53: the raw value is the value


def _plain(codec: PointCodec) -> bool:
    return codec.type in _PLAIN_TYPES and codec.scale == 1.0 and codec.offset == 0.0 and not codec.value_map


class BlockDecoder:
    """The points of one read: (name, register offset in the read, codec) each, over `count` registers."""

    def __init__(self, points: Sequence[tuple[str, int, PointCodec]], count: int) -> None:
        self._points = list(points)
        self._count = count
        self._registers = struct.Struct(f">{count}H")
        layout, at = [">"], 0
        names: list[str] = []
        self._finish: list[tuple[str, PointCodec]] = []  # unpacked, then finished like `decode` does
        self._alone: list[tuple[str, int, PointCodec]] = []  # decoded one by one
        for name, offset, codec in sorted(self._points, key=lambda point: point[1]):
            if codec.type in STRUCT_FORMAT and codec.byte_order == "ABCD" and offset >= at \
                    and offset + codec.width <= count:
                layout.append("x" * 2 * (offset - at) + STRUCT_FORMAT[codec.type][1])
                at = offset + codec.width
                names.append(name)
                if not _plain(codec):
                    self._finish.append((name, codec))
            else:
                self._alone.append((name, offset, codec))
        layout.append("x" * 2 * (count - at))
        self._names = tuple(names)
        self._block = struct.Struct("".join(layout))

    def decode(self, registers: Sequence[int]) -> tuple[dict[str, Value], dict[str, CodecError]]:
        """(values, errors) by point name: exactly what `decode` gives for each point."""
        if len(registers) != self._count:
            return _one_by_one(self._points, registers)
        try:
            data = self._registers.pack(*registers)
        except struct.error:  # a value outside 0..65535: only the points holding it fail
            return _one_by_one(self._points, registers)
        values: dict[str, Value] = dict(zip(self._names, self._block.unpack(data)))
        errors: dict[str, CodecError] = {}
        for name, codec in self._finish:
            try:
                values[name] = finish(codec, values[name])
            except CodecError as exc:
                del values[name]
                errors[name] = exc
        if self._alone:
            more, more_errors = _one_by_one(self._alone, registers)
            values.update(more)
            errors.update(more_errors)
        return values, errors


def _one_by_one(points: Sequence[tuple[str, int, PointCodec]],
                registers: Sequence[int]) -> tuple[dict[str, Value], dict[str, CodecError]]:
    values: dict[str, Value] = {}
    errors: dict[str, CodecError] = {}
    for name, offset, codec in points:
        try:
            values[name] = decode(codec, registers[offset:offset + codec.width])
        except CodecError as exc:
            errors[name] = exc
    return values, errors
