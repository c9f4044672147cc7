"""Decoding a whole read at once gives exactly what decoding each point alone gives: the same
values and the same errors (kind and message), whatever the layout, types and reply."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.modbus.block import BlockDecoder
from agent.collectors.modbus.codec import CodecError, PointCodec, decode

TYPES = ["bit", "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"]
ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]

codecs = st.builds(
    PointCodec,
    type=st.sampled_from(TYPES),
    byte_order=st.sampled_from(ORDERS + ["ABCD"] * 4),  # mostly the block's own order
    bit=st.integers(0, 15),
    length=st.integers(1, 3),
    scale=st.sampled_from([1.0, 1.0, 0.1, 0.25, 2.0, 1e300]),
    offset=st.sampled_from([0.0, 0.0, -40.0, 0.5]),
    value_map=st.sampled_from([{}, {}, {0: "off", 1: "on"}]),
)
# Mostly real registers (high ones too: signs, 64-bit values beyond 2^53); sometimes NaN or
# infinity as floats, or values no register holds.
register = st.integers(0, 0xFFFF) | st.sampled_from([0xFFFF, 0x8000, 0x0020, 0x7FC0, 0x7F80, 0xFFF8, 0x7FF0, 0x0000]) | \
    st.sampled_from([-1, 0x10000])


def one_by_one(points, registers):
    values, errors = {}, {}
    for name, offset, codec in points:
        try:
            values[name] = decode(codec, registers[offset:offset + codec.width])
        except CodecError as exc:
            errors[name] = (exc.kind, str(exc))
    return values, errors


@st.composite
def reads(draw):
    count = draw(st.integers(1, 30))
    points = []
    for number, codec in enumerate(draw(st.lists(codecs, min_size=1, max_size=12))):
        offset = draw(st.integers(0, max(0, count - codec.width)))  # points may overlap, as configs allow
        points.append((f"p{number}", offset, codec))
    length = draw(st.sampled_from([count] * 8 + [count - 1, count + 1]))  # sometimes a reply of the wrong size
    registers = draw(st.lists(register.filter(lambda r: 0 <= r <= 0xFFFF) if draw(st.booleans()) else register,
                              min_size=max(0, length), max_size=max(0, length)))
    return points, count, registers


@settings(max_examples=800, deadline=None)
@given(reads())
def test_a_block_decodes_to_what_each_point_decodes_to(read) -> None:
    points, count, registers = read
    values, errors = BlockDecoder(points, count).decode(registers)
    assert (values, {name: (exc.kind, str(exc)) for name, exc in errors.items()}) == one_by_one(points, registers)
    for name, value in values.items():  # equal, and of the same type (1 is not 1.0 on the wire)
        assert type(value) is type(one_by_one(points, registers)[0][name])


def test_a_hundred_plain_registers_come_out_of_one_unpack() -> None:
    points = [(f"r{i}", i, PointCodec()) for i in range(100)]
    registers = list(range(1000, 1100))
    assert BlockDecoder(points, 100).decode(registers) == ({f"r{i}": 1000 + i for i in range(100)}, {})


def test_floats_scaled_and_mapped_points_between_gaps() -> None:
    f32 = list(struct.unpack(">2H", struct.pack(">f", 230.1)))
    points = [("volts", 0, PointCodec(type="float32")), ("temp", 4, PointCodec(type="int16", scale=0.1)),
              ("mode", 6, PointCodec(value_map={2: "auto"})), ("nan", 7, PointCodec(type="float32"))]
    values, errors = BlockDecoder(points, 9).decode([*f32, 0, 0, 0xFFF6, 0, 2, 0x7FC0, 0])
    assert values == {"volts": 230.1, "temp": -1.0, "mode": "auto"}
    assert errors["nan"].kind == "invalid_value"


def test_64_bit_counters_beyond_2_53_become_strings_in_a_block_too() -> None:
    points = [("big", 0, PointCodec(type="uint64")), ("small", 4, PointCodec(type="int64"))]
    assert BlockDecoder(points, 8).decode([0xFFFF] * 4 + [0, 0, 0, 5]) == (
        {"big": "18446744073709551615", "small": 5}, {})
