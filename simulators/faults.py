"""Fault injection for the PLC simulator: which request a fault hits and what it does (pure).

A fault matches a request by unit id (None = every unit), table (None = every table,
including device identification) and an inclusive address range that must overlap the
request. Kinds:

    no_reply     swallow the request
    slow         answer after `delay` seconds
    exception    answer with Modbus exception `code` (1..11)
    hole         answer with Illegal Data Address (2) for reads touching the range
    drop         close the connection instead of answering
    malformed    answer with a frame whose checksum (RTU) or length field (TCP) is wrong
    truncated    answer with the frame cut short

Hostile replies (each a well-formed frame apart from the one thing named):

    wrong_function  answer with another read function code (3 <-> 4, 1 <-> 2) over the same data
    wrong_unit      answer as the next unit id
    byte_count      answer with one register (or one byte of bits) more than asked, byte count to match
    oversize        claim a length no frame can have: MBAP length 65535 (TCP), byte count 255 (RTU)
    flood           instead of answering, stream unsolicited frames and garbage until the
                    connection closes or the fault is removed
    unsolicited     answer, then send the same answer again `delay` seconds later, to no request
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from agent.collectors.modbus.frames import crc16

FaultKind = Literal["no_reply", "slow", "exception", "hole", "drop", "malformed", "truncated",
                    "wrong_function", "wrong_unit", "byte_count", "oversize", "flood", "unsolicited"]
KINDS: tuple[str, ...] = get_args(FaultKind)
REWRITES = ("malformed", "truncated", "wrong_function", "wrong_unit", "byte_count", "oversize")  # see rewrite()
TABLE_OF_FC = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
OTHER_READ_CODE = {1: 2, 2: 1, 3: 4, 4: 3}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    unit: int | None = None
    table: str | None = None
    start: int = 0
    end: int = 65535
    code: int = 4  # for "exception"
    delay: float = 0.0  # for "slow" and "unsolicited"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.kind == "exception" and not 1 <= self.code <= 11:
            raise ValueError("exception code must be 1..11")

    def matches(self, unit: int, function_code: int, address: int, count: int) -> bool:
        if self.unit is not None and self.unit != unit:
            return False
        table = TABLE_OF_FC.get(function_code)
        if table is None:  # device identification and anything else not address-based
            return self.table is None and (self.kind != "hole")
        if self.table is not None and self.table != table:
            return False
        return address <= self.end and self.start <= address + max(count, 1) - 1


def first_match(faults: Iterable[Fault], unit: int, function_code: int, address: int, count: int) -> Fault | None:
    return next((f for f in faults if f.matches(unit, function_code, address, count)), None)


def rewrite(frame: bytes, kind: str, rtu: bool) -> bytes:
    """What a fault of `kind` (one of REWRITES) sends instead of the well-formed reply `frame`."""
    if kind == "truncated":
        return frame[: max(1, len(frame) - 3)]
    if kind == "malformed":
        if rtu:  # flip the CRC
            return frame[:-2] + bytes(b ^ 0xFF for b in frame[-2:])
        # Modbus TCP: claim a PDU byte count one larger than sent and garble the function code
        length = int.from_bytes(frame[4:6], "big")
        return frame[:4] + (length + 1).to_bytes(2, "big") + frame[6:7] + bytes([frame[7] ^ 0x40]) + frame[8:]
    header, unit, pdu = (b"", frame[0], frame[1:-2]) if rtu else (frame[:6], frame[6], frame[7:])
    if kind == "wrong_function":
        pdu = bytes([OTHER_READ_CODE.get(pdu[0], 3)]) + pdu[1:]
    elif kind == "wrong_unit":
        unit = unit % 247 + 1
    elif kind == "byte_count" and pdu[0] in TABLE_OF_FC:
        extra = 1 if pdu[0] in (1, 2) else 2
        pdu = pdu[:1] + bytes([pdu[1] + extra]) + pdu[2:] + bytes(extra)
    elif kind == "oversize" and rtu:
        pdu = pdu[:1] + b"\xff" + pdu[2:]
    if rtu:
        return bytes([unit]) + pdu + crc16(bytes([unit]) + pdu)
    length = b"\xff\xff" if kind == "oversize" else (len(pdu) + 1).to_bytes(2, "big")
    return header[:4] + length + bytes([unit]) + pdu


def flood_chunk(frame: bytes, rtu: bool, size: int = 16384) -> bytes:
    """What a flooding peer streams: unsolicited frames (the reply as another unit) and garbage."""
    unsolicited = rewrite(frame, "wrong_unit", rtu)
    garbage = bytes((i * 73 + 41) % 256 for i in range(251))
    return ((unsolicited + garbage) * (size // (len(unsolicited) + len(garbage)) + 1))[:size]


class FaultSet:
    """The faults currently active on one simulator; safe to change from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults.remove(fault)

    def __contains__(self, fault: Fault) -> bool:
        with self._lock:
            return any(f is fault for f in self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def match(self, unit: int, function_code: int, address: int, count: int) -> Fault | None:
        with self._lock:
            return first_match(list(self._faults), unit, function_code, address, count)
