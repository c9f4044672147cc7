"""The one reply a Modbus request allows, checked byte by byte as it arrives (pure).

pymodbus accepts replies a read-only poller must refuse: a reply carrying another function
code is decoded as that function's data, a frame from another unit id is skipped while the
wait goes on, and an MBAP length field larger than any frame is waited for. `expect(frame)`
reads the request the agent just sent and describes the only reply it allows;
`check(expected, received)` says whether the bytes received so far are the start of that
reply, all of it, or something else (`MalformedReply` with the reason). Bytes beyond the
reply are malformed too, so the work per request is bounded by the reply's size whatever a
peer streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Framing = Literal["socket", "rtu"]  # Modbus TCP (MBAP header) or RTU (serial, or RTU over TCP)
Progress = Literal["partial", "complete"]

READ_TABLE_CODES = (1, 2, 3, 4)  # coils, discrete inputs, holding registers, input registers
DEVICE_IDENTIFICATION = 0x2B
MAX_PDU = 253  # function code + data, by the protocol
MAX_MBAP_LENGTH = MAX_PDU + 1  # the MBAP length field counts the unit id too
MAX_RTU_FRAME = MAX_PDU + 3  # unit id + PDU + CRC


class MalformedReply(ValueError):
    """Bytes that are not the reply the request allows; the message says what is wrong."""


@dataclass(frozen=True)
class Expected:
    framing: Framing
    unit: int
    function_code: int
    transaction: int = 0  # MBAP transaction id (socket framing only)
    byte_count: int | None = None  # data bytes of a read reply; None for device identification


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> bytes:
    """The Modbus RTU CRC of `data`, as the two bytes that follow it on the wire."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc.to_bytes(2, "little")


def reply_byte_count(function_code: int, count: int) -> int:
    """Data bytes in the reply to a read of `count` bits (FC 1, 2) or registers (FC 3, 4)."""
    return (count + 7) // 8 if function_code in (1, 2) else 2 * count


def expect(frame: bytes, framing: Framing) -> Expected:
    """The reply allowed for the request `frame` (as sent, header and CRC included)."""
    pdu = frame[7:] if framing == "socket" else frame[1:-2]
    unit = frame[6] if framing == "socket" else frame[0]
    transaction = int.from_bytes(frame[0:2], "big") if framing == "socket" else 0
    function_code = pdu[0]
    byte_count = None
    if function_code in READ_TABLE_CODES:
        byte_count = reply_byte_count(function_code, int.from_bytes(pdu[3:5], "big"))
    return Expected(framing, unit, function_code, transaction, byte_count)


def check(expected: Expected, received: bytes) -> Progress:
    """"partial" while `received` can still become the allowed reply, "complete" when it is
    exactly that reply; raises MalformedReply as soon as it cannot be."""
    if expected.framing == "socket":
        return _check_socket(expected, received)
    return _check_rtu(expected, received)


def _check_pdu_start(expected: Expected, pdu: bytes) -> int | None:
    """Validate the first PDU bytes; returns the PDU's full length when it is known yet."""
    if not pdu:
        return None
    code = pdu[0]
    if code == expected.function_code | 0x80:
        return 2  # exception reply: function code + exception code
    if code != expected.function_code:
        raise MalformedReply(f"function code {code} in the reply to a request with function code "
                             f"{expected.function_code}")
    if expected.byte_count is None or len(pdu) < 2:
        return None
    if pdu[1] != expected.byte_count:
        raise MalformedReply(f"byte count {pdu[1]} where the request allows {expected.byte_count}")
    return 2 + expected.byte_count


def _check_socket(expected: Expected, received: bytes) -> Progress:
    if len(received) >= 2 and (tid := int.from_bytes(received[0:2], "big")) != expected.transaction:
        raise MalformedReply(f"transaction id {tid} in the reply to transaction {expected.transaction}")
    if len(received) >= 4 and received[2:4] != b"\x00\x00":
        raise MalformedReply(f"protocol id {int.from_bytes(received[2:4], 'big')} (Modbus is 0)")
    if len(received) < 6:
        return "partial"
    length = int.from_bytes(received[4:6], "big")
    if not 2 <= length <= MAX_MBAP_LENGTH:
        raise MalformedReply(f"MBAP length field {length} (a frame holds 2 to {MAX_MBAP_LENGTH})")
    if len(received) >= 7 and received[6] != expected.unit:
        raise MalformedReply(f"unit id {received[6]} in the reply to unit {expected.unit}")
    pdu_length = _check_pdu_start(expected, received[7:])
    if pdu_length is not None and length != 1 + pdu_length:
        raise MalformedReply(f"MBAP length field {length} where the reply holds {1 + pdu_length}")
    return _progress(len(received), 6 + length)


def _check_rtu(expected: Expected, received: bytes) -> Progress:
    if received and received[0] != expected.unit:
        raise MalformedReply(f"unit id {received[0]} in the reply to unit {expected.unit}")
    pdu = received[1:]
    pdu_length = _check_pdu_start(expected, pdu)
    if pdu_length is None and pdu[:1] == bytes([DEVICE_IDENTIFICATION]):
        pdu_length = _identification_length(pdu)
    if pdu_length is None:
        if len(received) > MAX_RTU_FRAME:
            raise MalformedReply(f"more than {MAX_RTU_FRAME} bytes without a complete reply")
        return "partial"
    progress = _progress(len(received), 1 + pdu_length + 2)
    if progress == "complete" and received[-2:] != crc16(received[:-2]):
        raise MalformedReply("CRC mismatch")
    return progress


def _identification_length(pdu: bytes) -> int | None:
    """Length of a read device identification reply (FC 43/14), once its objects are in."""
    if len(pdu) < 7:
        return None
    position = 7  # fc, MEI type, read code, conformity, more follows, next object, object count
    for _ in range(pdu[6]):
        if len(pdu) < position + 2:
            return None
        position += 2 + pdu[position + 1]
    if position > MAX_PDU:
        raise MalformedReply(f"device identification objects longer than a PDU ({position} bytes)")
    return position


def _progress(have: int, total: int) -> Progress:
    if have > total:
        raise MalformedReply(f"{have - total} bytes more than the {total}-byte reply")
    return "complete" if have == total else "partial"
