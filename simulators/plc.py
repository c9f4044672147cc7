"""A PLC simulator on pymodbus's server: data-defined profiles, several unit ids, faults.

Each unit id serves one profile (simulators/profiles/*.toml). Values are computed from the
profile's behaviours at the moment a request arrives, so they move like a process without
any background task. The simulator counts every request it receives, per unit and
function code, and applies the faults of its `FaultSet` (see simulators/faults.py).

pymodbus 3.16 is used through its non-deprecated API: `SimDevice`/`SimData` datastores
(one per unit id, separate blocks per table), a `SimDevice.action` that refreshes the
registers before each read, and per-connection `trace_pdu`/`trace_packet` hooks for
request counting, per-unit device identification (FC 43/14) and wire-level faults.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import random
import select
import threading
import time
import tomllib
import tty
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agent.collectors.modbus.codec import PointCodec, encode
from simulators.faults import REWRITES, TABLE_OF_FC, Fault, FaultSet, flood_chunk, rewrite

PROFILE_DIR = Path(__file__).parent / "profiles"
TABLES = ("coil", "discrete", "holding", "input")
BEHAVIOURS = ("value", "sine", "counter", "square", "choice")


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class SimPoint:
    name: str
    table: str
    address: int
    codec: PointCodec
    behaviour: str
    params: Any
    noise: float = 0.0
    unit: str = ""
    value_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    identity: dict[str, str]
    sizes: dict[str, int]
    holes: list[tuple[str, int, int]]
    points: list[SimPoint]


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (simulators/profiles/NAME.toml) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise ValueError(f"no profile {name_or_path!r}: choose one of {', '.join(list_profiles())} or give a file")
    return parse_profile(tomllib.loads(path.read_text()), str(path))


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    points = []
    for index, raw in enumerate(data.get("points", [])):
        where = f"{source}: points[{index}]"
        behaviours = [b for b in BEHAVIOURS if b in raw]
        if len(behaviours) != 1:
            raise ValueError(f"{where}: give exactly one of {', '.join(BEHAVIOURS)}")
        codec = PointCodec(
            type=raw.get("type", "uint16"), byte_order=raw.get("byte_order", "ABCD"), bit=raw.get("bit", 0),
            length=raw.get("length", 1), scale=raw.get("scale", 1.0), offset=raw.get("offset", 0.0),
        )
        if raw["table"] not in TABLES:
            raise ValueError(f"{where}: table must be one of {', '.join(TABLES)}")
        points.append(SimPoint(raw["name"], raw["table"], raw["address"], codec, behaviours[0], raw[behaviours[0]],
                               raw.get("noise", 0.0), raw.get("unit", ""), dict(raw.get("map", {}))))
    sizes = {t: int(data.get("sizes", {}).get(t, 16)) for t in TABLES}
    holes = [(h["table"], h["start"], h.get("end", h["start"])) for h in data.get("holes", [])]
    return Profile(data["name"], data.get("description", ""), dict(data.get("identity", {})), sizes, holes, points)


def process_value(point: SimPoint, t: float, rng: random.Random) -> bool | int | float | str:
    """Engineering value of `point` at `t` seconds after the simulator started."""
    p = point.params
    if point.behaviour == "value":
        value = p
    elif point.behaviour == "sine":
        value = p["base"] + p["amplitude"] * math.sin(2 * math.pi * t / p["period"])
    elif point.behaviour == "counter":
        value = p["start"] + int(p["rate"] * t)
    elif point.behaviour == "square":
        value = (t % p["period"]) < p["duty"] * p["period"]
    else:  # choice
        values = p["values"]
        value = values[int(t / p["period"]) % len(values)]
    if point.noise and isinstance(value, float):
        value += rng.gauss(0.0, point.noise)
    return value


def raw_value(point: SimPoint, value: bool | int | float | str) -> bool | int | float | str:
    """What the device stores for an engineering value (inverse of scale and offset)."""
    codec = point.codec
    if isinstance(value, str) or isinstance(value, bool) or codec.type in ("bool", "bit", "string"):
        return value
    raw = (value - codec.offset) / codec.scale
    return raw if codec.type.startswith("float") else int(round(raw))


# ----------------------------------------------------------------------------- simulator


@dataclass
class UnitState:
    profile: Profile
    pinned: dict[str, Any] = field(default_factory=dict)  # point -> engineering value set by a test


class Simulator:
    """One Modbus server (TCP, RTU over TCP, or RTU on a serial port) with several units.

    Runs on its own event loop in a background thread (`start_*`), so tests and
    benchmarks can read `requests` and change `faults` from their own threads.
    """

    def __init__(self, units: dict[int, Profile], *, clock: Callable[[], float] = time.monotonic,
                 seed: int | None = None) -> None:
        self.units = {unit: UnitState(profile) for unit, profile in units.items()}
        self.faults = FaultSet()
        self.requests: Counter[tuple[int, int]] = Counter()  # (unit, function code) -> count
        self.connections = 0
        self.floods = 0  # floods streaming now
        self._clock = clock
        self._t0 = clock()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._pty: PtyLink | None = None
        self.endpoint = ""

    # -- counters and values, callable from any thread

    def request_count(self, unit: int | None = None, function_code: int | None = None) -> int:
        with self._lock:
            return sum(n for (u, fc), n in self.requests.items()
                       if (unit is None or u == unit) and (function_code is None or fc == function_code))

    def pin(self, unit: int, point: str, value: Any) -> None:
        """Hold a point at an engineering value (None releases it)."""
        if value is None:
            self.units[unit].pinned.pop(point, None)
        else:
            self.units[unit].pinned[point] = value

    def values(self, unit: int) -> dict[str, Any]:
        """Engineering values the unit would serve now (noise-free for pinned points)."""
        state, t = self.units[unit], self._clock() - self._t0
        return {p.name: state.pinned.get(p.name, process_value(p, t, self._rng)) for p in state.profile.points}

    # -- pymodbus datastore

    def _device(self, unit: int, state: UnitState) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        profile = state.profile
        blocks: dict[str, list[Any]] = {}
        for table in TABLES:
            size = profile.sizes[table]
            if table in ("coil", "discrete"):
                blocks[table] = [SimData(0, count=max(size, 1), values=False, datatype=DataType.BITS)]
                continue
            holes = sorted((s, e) for t, s, e in profile.holes if t == table)
            blocks[table], cursor = [], 0
            for start, end in holes + [(size, size)]:
                if start > cursor:
                    blocks[table].append(SimData(cursor, count=start - cursor, values=0, datatype=DataType.UINT16))
                if end >= start and start < size:
                    blocks[table].append(SimData(start, count=min(end, size - 1) - start + 1,
                                                 datatype=DataType.INVALID))
                cursor = end + 1
        return SimDevice(unit, simdata=(blocks["coil"], blocks["discrete"], blocks["holding"], blocks["input"]),
                         action=functools.partial(self._refresh, unit))

    async def _refresh(self, unit: int, function_code: int, start_address: int, address: int, count: int,
                       registers: list[int], set_values: Any) -> None:
        """Write the process values of the requested table into the live registers."""
        table = TABLE_OF_FC.get(function_code)
        if table is None or set_values is not None:
            return None
        state, t = self.units[unit], self._clock() - self._t0
        bits = table in ("coil", "discrete")
        bit_registers: dict[int, int] = {}  # several "bit" points may share one register
        for point in state.profile.points:
            if point.table != table:
                continue
            value = state.pinned.get(point.name)
            if value is None:
                value = process_value(point, t, self._rng)
            raw = raw_value(point, value)
            if bits:
                index, mask = point.address // 16 - start_address, 1 << (point.address % 16)
                if 0 <= index < len(registers):
                    registers[index] = (registers[index] | mask) if raw else (registers[index] & ~mask)
                continue
            words = encode(point.codec, raw)
            offset = point.address - start_address
            for i, word in enumerate(words):
                if not 0 <= offset + i < len(registers):
                    continue
                if point.codec.type == "bit":
                    word |= bit_registers.get(offset + i, 0)
                    bit_registers[offset + i] = word
                registers[offset + i] = word
        return None

    # -- per-connection hooks: counting, identification, faults

    def _hooks(self, rtu: bool) -> tuple[Callable, Callable, Callable, list[Any]]:
        pending: list[Fault | None] = [None]
        request: list[Any] = [None]
        handler: list[Any] = [None]

        def on_pdu(sending: bool, pdu: Any) -> Any:
            if not sending:
                fc = pdu.function_code
                with self._lock:
                    self.requests[(pdu.dev_id, fc)] += 1
                pending[0] = self.faults.match(pdu.dev_id, fc, getattr(pdu, "address", 0), getattr(pdu, "count", 1))
                request[0] = pdu
                return pdu
            fault = pending[0]
            if fault is not None and fault.kind in ("exception", "hole"):
                from pymodbus.pdu import ExceptionResponse

                code = 2 if fault.kind == "hole" else fault.code
                return ExceptionResponse(pdu.function_code & 0x7F, code, device_id=pdu.dev_id,
                                         transaction=pdu.transaction_id)
            if pdu.function_code == 0x2B and pdu.dev_id in self.units and request[0] is not None:
                return self._identification(request[0], pdu)
            return pdu

        def on_packet(sending: bool, packet: bytes) -> bytes:
            fault = pending[0]
            if not sending or fault is None:
                return packet
            pending[0] = None
            if fault.kind == "no_reply":
                return b""
            if fault.kind == "drop":
                if handler[0] is not None and handler[0].transport is not None:
                    handler[0].transport.close()
                return b""
            if fault.kind in REWRITES:
                return rewrite(packet, fault.kind, rtu)
            transport = handler[0].transport if handler[0] is not None else None
            if fault.kind in ("slow", "unsolicited") and transport is not None:
                asyncio.get_running_loop().call_later(fault.delay, _write_if_open, transport, packet)
            elif fault.kind == "flood" and transport is not None:
                asyncio.get_running_loop().create_task(self._flood(transport, fault, flood_chunk(packet, rtu)))
            return b"" if fault.kind in ("slow", "flood") else packet

        def on_connect(connected: bool) -> None:
            if connected:
                with self._lock:
                    self.connections += 1

        return on_pdu, on_packet, on_connect, handler

    async def _flood(self, transport: Any, fault: Fault, chunk: bytes) -> None:
        """Stream `chunk` as fast as the peer takes it, while the fault is on and the connection open."""
        with self._lock:
            self.floods += 1
        try:
            while fault in self.faults and not transport.is_closing():
                if transport.get_write_buffer_size():  # let the peer (or the pty) catch up
                    await asyncio.sleep(0.001)
                    continue
                transport.write(chunk)
                await asyncio.sleep(0)
        finally:
            with self._lock:
                self.floods -= 1

    def _identification(self, request: Any, response: Any) -> Any:
        from pymodbus.pdu.device import DeviceInformationFactory, ModbusDeviceIdentification
        from pymodbus.pdu.mei_message import ReadDeviceInformationResponse

        identity = self.units[response.dev_id].profile.identity
        ident = ModbusDeviceIdentification(info_name={
            "VendorName": identity.get("vendor_name", ""), "ProductCode": identity.get("product_code", ""),
            "MajorMinorRevision": identity.get("revision", ""), "ProductName": identity.get("product_name", ""),
            "ModelName": identity.get("model_name", ""),
        })
        info = DeviceInformationFactory.get(SimpleNamespace(Identity=ident), request.read_code, request.object_id)
        return ReadDeviceInformationResponse(read_code=request.read_code, information=info,
                                             dev_id=response.dev_id, transaction_id=response.transaction_id)

    def _build_server(self, kind: str, host: str, port: int, serial_port: str) -> Any:
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer
        from pymodbus.server.requesthandler import ServerRequestHandler

        devices = [self._device(unit, state) for unit, state in self.units.items()]
        rtu = kind != "tcp"
        simulator = self

        def new_connection(server: Any) -> Any:
            on_pdu, on_packet, on_connect, handler = simulator._hooks(rtu)
            handler[0] = ServerRequestHandler(server, on_packet, on_pdu, on_connect)
            return handler[0]

        common = dict(ignore_missing_devices=True)
        if kind == "rtu":
            server = ModbusSerialServer(devices, framer=FramerType.RTU, port=serial_port, baudrate=115200, **common)
        else:
            server = ModbusTcpServer(devices, framer=FramerType.RTU if rtu else FramerType.SOCKET,
                                     address=(host, port), **common)
        server.callback_new_connection = functools.partial(new_connection, server)
        return server

    # -- running

    def start(self, kind: str = "tcp", *, host: str = "127.0.0.1", port: int = 0, serial_port: str = "") -> str:
        """Start serving in a background thread; returns the endpoint ("host:port" or the tty)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen(kind, host, port, serial_port))
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._server.shutdown())
            loop.run_until_complete(_cancel(asyncio.all_tasks(loop)))  # floods still streaming
            loop.close()

        self._thread = threading.Thread(target=run, name=f"plc-sim-{kind}", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self.endpoint

    async def _listen(self, kind: str, host: str, port: int, serial_port: str) -> None:
        """Listen; for kind "rtu" with serial_port "pty", on a new pty link whose client end is the endpoint."""
        if kind == "rtu" and serial_port == "pty":
            self._pty = PtyLink()
            serial_port = self._pty.server_path
        self._server = self._build_server(kind, host, port, serial_port)
        await self._server.serve_forever(background=True)
        if kind == "rtu":
            self.endpoint = self._pty.client_path if self._pty else serial_port
        else:
            sock = self._server.transport.sockets[0]
            self.endpoint = "%s:%d" % sock.getsockname()[:2]

    async def serve(self, kind: str = "tcp", *, host: str = "127.0.0.1", port: int = 502, serial_port: str = "",
                    ready: Callable[[str], None] | None = None) -> None:
        """Serve on the current event loop until cancelled (the `edge-sim` command)."""
        await self._listen(kind, host, port, serial_port)
        if ready is not None:
            ready(self.endpoint)
        try:
            await asyncio.Event().wait()
        finally:
            await self._server.shutdown()
            if self._pty is not None:
                self._pty.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
        if self._pty is not None:
            self._pty.close()
            self._pty = None


class PtyLink:
    """Two pty pairs joined like a null-modem cable (what `socat pty pty` does).

    The simulator opens `server_path`, the client under test opens `client_path`; a
    thread copies bytes between the two master ends.
    """

    def __init__(self) -> None:
        self._masters: list[int] = []
        paths = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            self._masters.append(master)
            paths.append(os.ttyname(slave))
            self._slaves = getattr(self, "_slaves", []) + [slave]  # kept open so the pty survives
        self.server_path, self.client_path = paths
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="pty-link", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        a, b = self._masters
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(b if fd == a else a, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in self._masters + self._slaves:
            os.close(fd)


async def _cancel(tasks: set[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _write_if_open(transport: Any, packet: bytes) -> None:
    if not transport.is_closing():
        transport.write(packet)


def agent_points(profile: Profile) -> str:
    """TOML of `[[modbus.devices.points]]` entries an agent needs to read this profile."""
    lines = []
    for p in profile.points:
        lines += ["[[modbus.devices.points]]", f'name = "{p.name}"', f'table = "{p.table}"', f"address = {p.address}",
                  f'type = "{p.codec.type}"']
        if p.codec.type not in ("bool", "bit", "string", "uint16", "int16") or p.codec.byte_order != "ABCD":
            lines.append(f'byte_order = "{p.codec.byte_order}"')
        if p.codec.type == "bit":
            lines.append(f"bit = {p.codec.bit}")
        if p.codec.type == "string":
            lines.append(f"length = {p.codec.length}")
        if p.codec.scale != 1.0:
            lines.append(f"scale = {p.codec.scale}")
        if p.codec.offset != 0.0:
            lines.append(f"offset = {p.codec.offset}")
        if p.unit:
            lines.append(f'unit = "{p.unit}"')
        if p.value_map:
            lines.append("map = { " + ", ".join(f'{k} = "{v}"' for k, v in p.value_map.items()) + " }")
        lines.append("")
    return "\n".join(lines)
