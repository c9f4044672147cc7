"""Config models for Modbus devices and their points (pure pydantic, no pymodbus import)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.config_types import Name, PositiveDuration, Section

Table = Literal["coil", "discrete", "input", "holding"]
DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]


class PointConfig(Section):
    """One value to read from a device."""

    name: Name
    table: Table
    address: int = Field(ge=0, le=65535, description="zero-based protocol address")
    type: DataType = "uint16"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = Field("", description="engineering unit, e.g. \"rpm\" or \"degC\"")

    @model_validator(mode="after")
    def _bits_are_bools(self) -> "PointConfig":
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} point holds one bit: set type = \"bool\"")
        if self.table in ("input", "holding") and self.type == "bool":
            raise ValueError(f"type \"bool\" needs table \"coil\" or \"discrete\", not \"{self.table}\"")
        return self


class DeviceConfig(Section):
    """One Modbus slave (PLC, drive, meter) reached over TCP."""

    name: Name
    transport: Literal["tcp"] = "tcp"
    host: str
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id")
    interval: PositiveDuration = 5.0
    timeout: PositiveDuration = 2.0
    points: list[PointConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_points(self) -> "DeviceConfig":
        seen: set[str] = set()
        for point in self.points:
            if point.name in seen:
                raise ValueError(f"point name {point.name!r} is used twice: names must be unique per device")
            seen.add(point.name)
        return self


class ModbusConfig(Section):
    devices: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_devices(self) -> "ModbusConfig":
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique; repeated: {', '.join(dupes)}")
        return self
