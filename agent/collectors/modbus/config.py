"""Config models for Modbus devices and their points (pure pydantic, no pymodbus import).

Addresses are written as the device manual writes them: `addressing = "zero_based"`
(protocol addresses, the table given by `table`) or `"modicon"` (1-based with the table in
the leading digit: 00001 coil, 10001 discrete input, 30001 input register, 40001 holding
register; six-digit forms 100001/300001/400001 reach addresses up to 65535).
`PointConfig.resolve(device)` turns either form into (table, zero-based address).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.collectors.modbus.codec import ByteOrder, DataType, PointCodec
from agent.collectors.modbus.planner import BIT_TABLES, PROTOCOL_MAX_BITS, PROTOCOL_MAX_REGISTERS, Limits, Span
from agent.core.settings import (
    Duration,
    Name,
    PositiveDuration,
    Problem,
    Section,
    every_problem,
    valid_fields,
    valid_model,
)
from agent.readiness.policy import AssetReadiness

Table = Literal["coil", "discrete", "input", "holding"]
Addressing = Literal["zero_based", "modicon"]

# (first, last) Modicon number and its table, five- then six-digit forms.
_MODICON = [
    (1, 9999, "coil"), (10001, 19999, "discrete"), (30001, 39999, "input"), (40001, 49999, "holding"),
    (100001, 165536, "discrete"), (300001, 365536, "input"), (400001, 465536, "holding"),
]  # fmt: skip


class PointError(ValueError):
    """A point that does not fit its device; `field` is the point's field to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def modicon_to_zero_based(number: int) -> tuple[str, int]:
    """(table, protocol address) of a Modicon-style register number, or ValueError."""
    for first, last, table in _MODICON:
        if first <= number <= last:
            return table, number - first
    raise ValueError(
        f"{number} is not a Modicon address: use 1-9999 (coil), 10001-19999 (discrete), "
        "30001-39999 (input), 40001-49999 (holding) or the six-digit 100001/300001/400001 forms"
    )


class PointConfig(Section):
    """One value to read from a device."""

    name: Name
    table: Table | None = Field(None, description="required with zero-based addressing; implied by Modicon numbers")
    address: int = Field(ge=0, le=465536, description="as the device manual writes it (see the device's addressing)")
    type: DataType = Field("uint16", description="bool (coils, discrete inputs), bit (one bit of a register), "
                                                 "int16/uint16/int32/uint32/int64/uint64, float32/float64, string")
    bit: int | None = Field(None, ge=0, le=15, description="for type \"bit\": 0 = least significant bit")
    length: int | None = Field(None, ge=1, le=125, description="for type \"string\": number of registers")
    byte_order: ByteOrder | None = Field(None, description="overrides the device's byte_order for this point")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = Field("", description="engineering unit, e.g. \"rpm\" or \"degC\"")
    map: dict[str, str] = Field(default_factory=dict, description="raw code -> text, e.g. { 3 = \"overtemperature\" }")
    deadband: float | None = Field(None, ge=0, description="report only when the value moved more than this")
    on_change: bool = Field(False, description="report only when the value changed")

    @field_validator("map")
    @classmethod
    def _integer_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for code in value:
            try:
                int(code)
            except ValueError:
                raise ValueError(f"map key {code!r} is not an integer code") from None
        return value

    @model_validator(mode="after")
    def _type_fits(self) -> "PointConfig":
        if self.type == "bit" and self.bit is None:
            raise ValueError("type \"bit\" needs bit = 0..15 (which bit of the register)")
        if self.type != "bit" and self.bit is not None:
            raise ValueError("bit is only used with type \"bit\"")
        if self.type == "string" and self.length is None:
            raise ValueError("type \"string\" needs length = number of registers")
        if self.type != "string" and self.length is not None:
            raise ValueError("length is only used with type \"string\"")
        if self.deadband is not None and self.type in ("bool", "bit", "string"):
            raise ValueError(f"deadband needs a numeric type, not {self.type!r}: use on_change = true")
        return self

    def resolve(self, addressing: Addressing) -> tuple[str, int]:
        """(table, zero-based protocol address) under the device's addressing, or PointError."""
        if addressing == "modicon":
            try:
                table, address = modicon_to_zero_based(self.address)
            except ValueError as exc:
                raise PointError("address", str(exc)) from None
            if self.table is not None and self.table != table:
                raise PointError("table", f"address {self.address} is a {table} address but table is {self.table!r}")
        else:
            if self.table is None:
                raise PointError("table", "table is required with zero-based addressing "
                                          "(coil, discrete, input or holding)")
            table, address = self.table, self.address
            if address > 65535:
                raise PointError("address", f"zero-based address {address} is above 65535")
        if table in BIT_TABLES and self.type != "bool":
            raise PointError("type", f"a {table} point holds one bit: set type = \"bool\"")
        if table not in BIT_TABLES and self.type == "bool":
            raise PointError("type", "type \"bool\" needs a coil or discrete table (use type \"bit\" for a register bit)")
        return table, address

    @property
    def width(self) -> int:
        """Registers (bits for "bool") the point occupies."""
        return PointCodec(type=self.type, length=self.length or 1).width

    def codec(self, device_order: ByteOrder) -> PointCodec:
        return PointCodec(
            type=self.type, byte_order=self.byte_order or device_order, bit=self.bit or 0, length=self.length or 1,
            scale=self.scale, offset=self.offset, value_map={int(k): v for k, v in self.map.items()},
        )


class RefusedRange(Section):
    """Addresses the device answers with an exception: no read may include them."""

    table: Table
    start: int = Field(ge=0, le=65535, description="zero-based protocol address")
    end: int = Field(ge=0, le=65535, description="inclusive; defaults to start")

    @model_validator(mode="before")
    @classmethod
    def _end_defaults_to_start(cls, data: object) -> object:
        if isinstance(data, dict) and "end" not in data and "start" in data:
            data = {**data, "end": data["start"]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> "RefusedRange":
        if self.end < self.start:
            raise ValueError("end must not be below start")
        return self


class SerialConfig(Section):
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(19200, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class DeviceConfig(Section):
    """One Modbus slave (PLC, drive, meter). Devices that share host:port (or a serial
    port) share one connection; their requests are serialised on it."""

    name: Name
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = "tcp"
    host: str = Field("", description="for tcp and rtu_over_tcp")
    port: int = Field(502, ge=1, le=65535)
    serial: SerialConfig | None = Field(None, description="for transport = \"rtu\"")
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id")
    addressing: Addressing = "zero_based"
    byte_order: ByteOrder = Field("ABCD", description="default for the device's multi-register points")
    interval: PositiveDuration = 5.0
    timeout: PositiveDuration = 2.0
    retries: int = Field(1, ge=0, le=5, description="extra attempts of a timed-out request")
    pause_after_connect: Duration = Field(0.0, description="some devices drop the first request after connect")
    pause_between_requests: Duration = Field(0.0, description="for slow or picky devices")
    max_registers_per_read: int = Field(PROTOCOL_MAX_REGISTERS, ge=1, le=PROTOCOL_MAX_REGISTERS)
    max_bits_per_read: int = Field(PROTOCOL_MAX_BITS, ge=1, le=PROTOCOL_MAX_BITS)
    max_gap: int = Field(16, ge=0, le=PROTOCOL_MAX_REGISTERS, description="unread registers a read may bridge")
    max_gap_bits: int = Field(128, ge=0, le=PROTOCOL_MAX_BITS, description="unread bits a read may bridge")
    refused: list[RefusedRange] = Field(default_factory=list)
    identity: bool = Field(True, description="read the device identification (function 43/14) once per connection")
    points: list[PointConfig] = Field(min_length=1)
    readiness: AssetReadiness = Field(default_factory=AssetReadiness, description="criticality and tolerable downtime")

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Any) -> Any:
        return every_problem(cls, data, handler, _device_problems)

    def spans(self) -> list[Span]:
        out = []
        for point in self.points:
            table, address = point.resolve(self.addressing)
            out.append(Span(point.name, table, address, point.width))
        return out

    def limits(self) -> Limits:
        return Limits(self.max_registers_per_read, self.max_bits_per_read, self.max_gap, self.max_gap_bits)

    def refused_ranges(self) -> dict[str, list[tuple[int, int]]]:
        out: dict[str, list[tuple[int, int]]] = {}
        for rng in self.refused:
            out.setdefault(rng.table, []).append((rng.start, rng.end))
        return out

    @property
    def line(self) -> str:
        """The connection this device is reached over; devices on one line share it."""
        if self.transport == "rtu":
            assert self.serial is not None
            return f"rtu:{self.serial.port}"
        return f"{self.transport}:{self.host}:{self.port}"


class ModbusConfig(Section):
    devices: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Any) -> Any:
        return every_problem(cls, data, handler, _line_problems)


# The device fields its cross-field rules read (each may fail on its own in a raw device).
_RULE_FIELDS = ("transport", "host", "serial", "addressing", "max_registers_per_read", "max_bits_per_read", "refused")


def _device_problems(value: Any) -> list[Problem]:
    """The rules between a device's fields and its points, on a valid device or what of a raw
    one validates (so a bad port does not hide a bad register)."""
    if isinstance(value, DeviceConfig):
        settings = {name: getattr(value, name) for name in _RULE_FIELDS}
        points = list(enumerate(value.points))
    elif isinstance(value, dict):
        settings = valid_fields(DeviceConfig, value, _RULE_FIELDS)
        raw = value.get("points")
        points = [(i, p) for i, p in enumerate(raw if isinstance(raw, list) else []) if isinstance(p, dict)]
        points = [(i, point) for i, p in points if (point := valid_model(PointConfig, p)) is not None]
    else:
        return []
    return _transport_problems(settings) + _point_problems(settings, points)


def _transport_problems(d: dict[str, Any]) -> list[Problem]:
    if "transport" not in d:
        return []
    if d["transport"] == "rtu":
        return [(("serial",), "transport \"rtu\" needs a [serial] table with at least port")] \
            if d.get("serial", True) is None else []
    out: list[Problem] = []
    if d.get("host", "x") == "":
        out.append((("host",), f"transport {d['transport']!r} needs host"))
    if d.get("serial") is not None:
        out.append((("serial",), f"serial settings are only used with transport \"rtu\", not {d['transport']!r}"))
    return out


def _point_problems(d: dict[str, Any], points: list[tuple[int, PointConfig]]) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for index, point in points:
        where = ("points", index)
        if point.name in seen:
            out.append(((*where, "name"), f"point name {point.name!r} is used twice: names must be unique per device"))
        seen.add(point.name)
        if "addressing" not in d:
            continue
        try:
            table, address = point.resolve(d["addressing"])
        except PointError as exc:
            out.append(((*where, exc.field), f"point {point.name}: {exc}"))
            continue
        span = Span(point.name, table, address, point.width)
        if span.end > 65535:
            out.append(((*where, "address"), f"point {point.name}: runs past address 65535"))
        limit_name = "max_bits_per_read" if table in BIT_TABLES else "max_registers_per_read"
        if limit_name in d and span.width > d[limit_name]:
            out.append(((*where, "type"), f"point {point.name}: {span.width} registers exceed "
                                          f"{limit_name} = {d[limit_name]}"))
        for rng in d.get("refused", []):
            if rng.table == table and rng.start <= span.end and span.start <= rng.end:
                out.append(((*where, "address"), f"point {point.name}: lies on refused {table} {rng.start}-{rng.end}"))
    return out


def _line_problems(value: Any) -> list[Problem]:
    """Unique device names; units on one line differ and agree on serial settings."""
    if isinstance(value, ModbusConfig):
        devices = list(enumerate(value.devices))
    elif isinstance(value, dict) and isinstance(value.get("devices"), list):
        devices = [(i, device) for i, raw in enumerate(value["devices"])
                   if isinstance(raw, dict) and (device := valid_model(DeviceConfig, raw)) is not None]
    else:
        return []
    out: list[Problem] = []
    names: dict[str, int] = {}
    lines: dict[str, DeviceConfig] = {}
    for index, device in devices:
        if device.name in names:
            out.append((("devices", index, "name"), f"device name {device.name!r} is used twice: names must be unique"))
        names.setdefault(device.name, index)
        other = lines.setdefault(device.line, device)
        if other is device:
            continue
        if other.unit == device.unit:
            out.append((("devices", index, "unit"),
                        f"devices {other.name} and {device.name} share {device.line} and unit {device.unit}"))
        if device.serial is not None and device.serial != other.serial:
            out.append((("devices", index, "serial"), f"devices {other.name} and {device.name} share serial port "
                                                      f"{device.serial.port} with different serial settings"))
    return out
