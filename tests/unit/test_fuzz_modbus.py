"""Hostile Modbus replies: whatever registers a device (or a broken gateway) returns, decoding
gives a value that can be signed and sent, or a CodecError naming the kind of problem."""

from __future__ import annotations

from typing import get_args

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.modbus.codec import ByteOrder, CodecError, DataType, PointCodec, decode, decode_bit
from agent.trust import envelope

KEY = Ed25519PrivateKey.generate()
FUZZ = settings(max_examples=500, deadline=None)

codecs = st.builds(
    PointCodec,
    type=st.sampled_from([t for t in get_args(DataType) if t != "bool"]),
    byte_order=st.sampled_from(get_args(ByteOrder)),
    bit=st.integers(0, 15),
    length=st.integers(1, 16),
    scale=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12).filter(bool),
    offset=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    value_map=st.dictionaries(st.integers(-5, 70000), st.text(max_size=8), max_size=3),
)
registers = st.one_of(
    st.lists(st.integers(0, 0xFFFF), max_size=20),  # what a device can send
    st.lists(st.integers(-(2**20), 2**20), max_size=6),  # what a broken gateway layer might hand over
)


def assert_sealable(value) -> None:
    envelope.seal(KEY, kid="k", node="n", topic="edge/n/modbus/d", kind="modbus", session="s", seq=1,
                  ts_ms=0, body={"values": {"p": value}})


@FUZZ
@given(codecs, registers)
def test_any_reply_decodes_to_a_sendable_value_or_a_codec_error(codec: PointCodec, regs: list[int]) -> None:
    try:
        value = decode(codec, regs)
    except CodecError as exc:
        assert exc.kind in {"malformed_reply", "invalid_value"} and str(exc)
        return
    assert isinstance(value, (bool, int, float, str))
    assert_sealable(value)


@FUZZ
@given(codecs, st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=16))
def test_replies_of_the_right_width_never_fail_as_malformed(codec: PointCodec, pool: list[int]) -> None:
    regs = (pool * codec.width)[:codec.width]
    try:
        assert_sealable(decode(codec, regs))
    except CodecError as exc:
        assert exc.kind == "invalid_value"  # NaN/infinity floats, or scaled out of range


@FUZZ
@given(codecs, st.booleans())
def test_bits_decode_to_a_sendable_value(codec: PointCodec, bit: bool) -> None:
    assert_sealable(decode_bit(codec, bit))
