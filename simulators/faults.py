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
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["no_reply", "slow", "exception", "hole", "drop", "malformed", "truncated"]
KINDS: tuple[str, ...] = ("no_reply", "slow", "exception", "hole", "drop", "malformed", "truncated")
TABLE_OF_FC = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    unit: int | None = None
    table: str | None = None
    start: int = 0
    end: int = 65535
    code: int = 4  # for "exception"
    delay: float = 0.0  # for "slow"

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


def corrupt(frame: bytes, kind: str, rtu: bool) -> bytes:
    """A damaged copy of a well-formed response frame."""
    if kind == "truncated":
        return frame[: max(1, len(frame) - 3)]
    if rtu:  # flip the CRC
        return frame[:-2] + bytes(b ^ 0xFF for b in frame[-2:])
    # Modbus TCP: claim a PDU byte count one larger than sent and garble the function code
    length = int.from_bytes(frame[4:6], "big")
    return frame[:4] + (length + 1).to_bytes(2, "big") + frame[6:7] + bytes([frame[7] ^ 0x40]) + frame[8:]


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

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def match(self, unit: int, function_code: int, address: int, count: int) -> Fault | None:
        with self._lock:
            return first_match(list(self._faults), unit, function_code, address, count)
