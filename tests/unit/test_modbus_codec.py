"""Register codec: byte orders, types, scaling, maps, and robustness on arbitrary input."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.collectors.modbus.codec import (
    CodecError,
    PointCodec,
    bytes_to_registers,
    decode,
    decode_bit,
    encode,
    registers_to_bytes,
)

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def test_byte_orders_of_a_known_32_bit_value():
    data = bytes.fromhex("11223344")
    assert bytes_to_registers(data, "ABCD") == [0x1122, 0x3344]
    assert bytes_to_registers(data, "CDAB") == [0x3344, 0x1122]
    assert bytes_to_registers(data, "BADC") == [0x2211, 0x4433]
    assert bytes_to_registers(data, "DCBA") == [0x4433, 0x2211]


def test_float32_as_a_vendor_manual_writes_it():
    # 123.456 as IEEE 754 is 0x42F6E979; a word-swapped meter serves [0xE979, 0x42F6].
    value = decode(PointCodec(type="float32", byte_order="CDAB"), [0xE979, 0x42F6])
    assert value == pytest.approx(123.456, rel=1e-6)


def test_64_bit_word_order():
    regs = bytes_to_registers(struct.pack(">Q", 0x0102030405060708), "CDAB")
    assert regs == [0x0708, 0x0506, 0x0304, 0x0102]
    assert decode(PointCodec(type="uint64", byte_order="CDAB"), regs) == str(0x0102030405060708)  # > 2^53


def test_large_64_bit_counters_become_strings_small_ones_stay_numbers():
    codec = PointCodec(type="uint64")
    assert decode(codec, encode(codec, 2**53 + 1)) == str(2**53 + 1)
    assert decode(codec, encode(codec, 2**53 - 1)) == 2**53 - 1
    signed = PointCodec(type="int64")
    assert decode(signed, encode(signed, -(2**60))) == str(-(2**60))


def test_scale_offset_and_signedness():
    assert decode(PointCodec(type="int16", scale=0.1), [0xFFF6]) == pytest.approx(-1.0)
    assert decode(PointCodec(type="uint16", scale=0.5, offset=-10), [100]) == pytest.approx(40.0)
    assert decode(PointCodec(type="uint16"), [0xFFF6]) == 0xFFF6


def test_value_map_and_unmapped_code():
    codec = PointCodec(type="uint16", value_map={0: "ok", 3: "overtemperature"})
    assert decode(codec, [3]) == "overtemperature"
    assert decode(codec, [7]) == 7
    assert decode_bit(PointCodec(type="bool", value_map={1: "running", 0: "stopped"}), True) == "running"
    assert decode_bit(PointCodec(type="bool"), False) is False


def test_bit_in_register():
    assert decode(PointCodec(type="bit", bit=0), [0b1]) is True
    assert decode(PointCodec(type="bit", bit=15), [0x8000]) is True
    assert decode(PointCodec(type="bit", bit=14), [0x8000]) is False


def test_string_over_registers_with_and_without_byte_swap():
    assert decode(PointCodec(type="string", length=3), [0x4142, 0x4344, 0x4500]) == "ABCDE"
    assert decode(PointCodec(type="string", length=2, byte_order="BADC"), [0x4241, 0x4443]) == "ABCD"
    assert decode(PointCodec(type="string", length=2), [0x4142, 0x2020]) == "AB"


def test_nan_and_wrong_length_are_documented_errors():
    with pytest.raises(CodecError) as err:
        decode(PointCodec(type="float32"), [0x7FC0, 0x0000])
    assert err.value.kind == "invalid_value"
    with pytest.raises(CodecError) as err:
        decode(PointCodec(type="int32"), [1])
    assert err.value.kind == "malformed_reply"


@given(st.sampled_from(ORDERS), st.binary(min_size=8, max_size=8))
def test_registers_bytes_round_trip(order, data):
    assert registers_to_bytes(bytes_to_registers(data, order), order) == data
    assert len(bytes_to_registers(data[:4], order)) == 2


INT_RANGES = {"int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
              "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1)}


@given(st.data(), st.sampled_from(sorted(INT_RANGES)), st.sampled_from(ORDERS))
def test_integer_round_trip(data, type_, order):
    lo, hi = INT_RANGES[type_]
    value = data.draw(st.integers(lo, hi))
    codec = PointCodec(type=type_, byte_order=order)
    decoded = decode(codec, encode(codec, value))
    assert decoded == (str(value) if abs(value) > 2**53 - 1 else value)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from(ORDERS))
def test_float32_round_trip(value, order):
    codec = PointCodec(type="float32", byte_order=order)
    decoded = decode(codec, encode(codec, value))
    assert struct.pack(">f", decoded) == struct.pack(">f", value)  # the same float32
    assert len(repr(decoded)) <= len(repr(value))  # written no longer than needed


def test_float32_is_reported_in_its_shortest_form_and_scaled_integers_rounded():
    codec = PointCodec(type="float32")
    assert decode(codec, bytes_to_registers(struct.pack(">f", 230.1), "ABCD")) == 230.1
    assert decode(PointCodec(type="int16", scale=0.1), [484]) == 48.4
    assert decode(PointCodec(type="uint16", scale=0.01, offset=-0.5), [624]) == 5.74
    assert decode(PointCodec(type="uint16", scale=0.25), [3]) == 0.75


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(ORDERS))
def test_float64_round_trip(value, order):
    codec = PointCodec(type="float64", byte_order=order)
    assert decode(codec, encode(codec, value)) == value


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=10), st.sampled_from(ORDERS))
def test_string_round_trip(text, order):
    codec = PointCodec(type="string", length=5, byte_order=order)
    assert decode(codec, encode(codec, text)) == text


TYPES = ["bit", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"]


@given(st.sampled_from(TYPES), st.sampled_from(ORDERS), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=6),
       st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_arbitrary_registers_decode_or_raise_codec_error(type_, order, regs, scale, offset):
    codec = PointCodec(type=type_, byte_order=order, length=3, scale=scale, offset=offset, bit=7)
    try:
        value = decode(codec, regs[: codec.width] if len(regs) >= codec.width else regs)
    except CodecError as exc:
        assert exc.kind in ("malformed_reply", "invalid_value")
        return
    assert isinstance(value, (bool, int, float, str))
    if isinstance(value, float):
        assert math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        assert abs(value) <= 2**53 - 1
