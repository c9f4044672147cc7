"""The strict reply check against frames built by pymodbus itself (an independent encoder):
every well-formed reply and each of its prefixes passes, every hostile variant fails with
its reason, and no input makes the check do more than say so."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
)
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest, ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from agent.collectors.modbus.frames import MAX_RTU_FRAME, MalformedReply, check, crc16, expect

FRAMERS = {"socket": FramerSocket(DecodePDU(False)), "rtu": FramerRTU(DecodePDU(False))}
UNIT, TID = 7, 300


def frame(framing, pdu):
    pdu.dev_id, pdu.transaction_id = UNIT, TID if framing == "socket" else 0
    return FRAMERS[framing].buildFrame(pdu)


def read_pair(fc: int, count: int):
    if fc in (1, 2):
        request, response = (ReadCoilsRequest, ReadCoilsResponse) if fc == 1 else (
            ReadDiscreteInputsRequest, ReadDiscreteInputsResponse)
        return request(address=10, count=count), response(bits=[i % 3 == 0 for i in range(count)])
    request, response = (ReadHoldingRegistersRequest, ReadHoldingRegistersResponse) if fc == 3 else (
        ReadInputRegistersRequest, ReadInputRegistersResponse)
    return request(address=10, count=count), response(registers=list(range(count)))


def identification_pair():
    info = {0: b"Vendor", 1: b"PRODUCT-1", 2: b"1.0"}
    return ReadDeviceInformationRequest(read_code=1), ReadDeviceInformationResponse(read_code=1, information=info)


CASES = [(fc, count) for fc in (1, 2, 3, 4) for count in (1, 9, 125 if fc > 2 else 2000)]


@pytest.mark.parametrize("framing", ["socket", "rtu"])
@pytest.mark.parametrize("fc,count", CASES)
def test_the_reply_and_each_of_its_prefixes_pass(framing, fc, count):
    request, response = read_pair(fc, count)
    expected = expect(frame(framing, request), framing)
    reply = frame(framing, response)
    assert [check(expected, reply[:n]) for n in range(len(reply))] == ["partial"] * len(reply)
    assert check(expected, reply) == "complete"
    with pytest.raises(MalformedReply, match="more than"):
        check(expected, reply + b"\x00")


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_exception_and_identification_replies_pass(framing):
    request, _ = read_pair(3, 4)
    expected = expect(frame(framing, request), framing)
    assert check(expected, frame(framing, ExceptionResponse(3, 2))) == "complete"
    request, response = identification_pair()
    expected = expect(frame(framing, request), framing)
    reply = frame(framing, response)
    assert all(check(expected, reply[:n]) == "partial" for n in range(len(reply)))
    assert check(expected, reply) == "complete"


def rebuild(framing, header_and_pdu: bytes) -> bytes:
    """A frame with a correct MBAP length or CRC around changed content."""
    if framing == "socket":
        return header_and_pdu[:4] + (len(header_and_pdu) - 6).to_bytes(2, "big") + header_and_pdu[6:]
    return header_and_pdu + crc16(header_and_pdu)


@pytest.mark.parametrize("framing", ["socket", "rtu"])
def test_hostile_replies_are_malformed_with_the_reason(framing):
    request, response = read_pair(3, 4)
    expected = expect(frame(framing, request), framing)
    good = frame(framing, response)
    body = good if framing == "socket" else good[:-2]
    unit_at = 6 if framing == "socket" else 0
    hostile = {
        "function code 4": rebuild(framing, body[:unit_at + 1] + b"\x04" + body[unit_at + 2:]),
        "unit id 8": rebuild(framing, body[:unit_at] + b"\x08" + body[unit_at + 1:]),
        "byte count 10": rebuild(framing, body[:unit_at + 2] + b"\x0a" + body[unit_at + 3:] + b"\x00\x00"),
        "byte count 6": rebuild(framing, body[:unit_at + 2] + b"\x06" + body[unit_at + 3:-2]),
    }
    if framing == "socket":
        hostile["MBAP length field 65535"] = good[:4] + b"\xff\xff" + good[6:]
        hostile["MBAP length field 12"] = good[:4] + b"\x00\x0c" + good[6:] + b"\x00\x00"
        hostile["transaction id 301"] = (TID + 1).to_bytes(2, "big") + good[2:]
        hostile["protocol id 1"] = good[:2] + b"\x00\x01" + good[4:]
    else:
        hostile["CRC mismatch"] = good[:-1] + bytes([good[-1] ^ 1])
    for reason, reply in hostile.items():
        with pytest.raises(MalformedReply, match=reason):
            check(expected, reply)


def test_crc_agrees_with_pymodbus():
    for data in (b"", b"\x01", bytes(range(256)), b"\x07\x03\x06\x00\x01\x00\x02\x00\x03"):
        assert crc16(data) == FramerRTU.compute_CRC(data).to_bytes(2, "big")


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["socket", "rtu"]), st.sampled_from(CASES), st.binary(max_size=600))
def test_any_bytes_are_partial_complete_or_malformed(framing, case, data):
    request, _ = read_pair(*case)
    expected = expect(frame(framing, request), framing)
    try:
        progress = check(expected, data)
    except MalformedReply:
        return
    assert progress in ("partial", "complete")
    assert len(data) <= MAX_RTU_FRAME + 4  # nothing longer than a frame is ever waited on
