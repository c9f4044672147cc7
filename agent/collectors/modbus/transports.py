"""Connections to Modbus devices: one `Line` per TCP endpoint, gateway or serial port.

Devices that share a line share its connection and take turns on it (`Line.turns`), so
requests on one serial line (or to one TCP gateway) never overlap. A line reconnects with
exponential backoff plus jitter; after a timeout or a garbled reply it drops the connection,
so a late answer to an old request can never be taken for the answer to a new one.

Every reply is checked byte by byte as it arrives (`frames.check`): the function code, unit
id, byte count and length must be the ones the request allows, and nothing may arrive when
no request is outstanding. Anything else fails the request at once as `malformed_reply` and
drops the connection, so a peer streaming garbage costs one read of it, not a core.

The agent is read-only toward PLCs: every frame leaving a line passes `_guard`, which
refuses any function code outside READ_FUNCTION_CODES before a byte is written.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from agent.collectors.modbus import frames
from agent.collectors.modbus.config import DeviceConfig
from agent.collectors.modbus.planner import function_code
from agent.collectors.modbus.turns import Turns
from agent.core.timing import Backoff

log = logging.getLogger(__name__)

READ_FUNCTION_CODES = frozenset({1, 2, 3, 4, 43})  # read coils/discrete/holding/input, device identification

EXCEPTION_KINDS = {
    1: "illegal_function", 2: "illegal_data_address", 3: "illegal_data_value", 4: "device_failure",
    5: "acknowledge", 6: "device_busy", 7: "negative_acknowledge", 8: "memory_parity_error",
    10: "gateway_path_unavailable", 11: "gateway_target_failed",
}  # fmt: skip
IDENTITY_OBJECTS = {0: "vendor_name", 1: "product_code", 2: "revision"}


class ReadOnlyViolation(AssertionError):
    """Something tried to send a Modbus function code that is not a read."""


class ModbusReadError(Exception):
    """A failed request; `kind` is the error kind counted in the device status."""

    def __init__(self, kind: str, message: str, code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.code = code

    @property
    def breaks_connection(self) -> bool:
        """True when the rest of the cycle should not be tried (the device is not answering)."""
        return self.kind in SILENT_KINDS or self.kind in CONNECT_KINDS or self.kind == "backoff"


SILENT_KINDS = frozenset({"timeout", "malformed_reply", "connection_reset"})  # connected, but no usable answer
CONNECT_KINDS = frozenset({"connect_failed", "dns_failed"})  # no connection to ask on


def _guard(sending: bool, pdu: Any) -> Any:
    if sending and pdu.function_code not in READ_FUNCTION_CODES:
        raise ReadOnlyViolation(f"refusing to send Modbus function code {pdu.function_code}: the agent is read-only")
    return pdu


class Line:
    """One connection shared by the devices configured on it."""

    def __init__(self, device: DeviceConfig, backoff: Backoff = Backoff(), *,
                 monotonic: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.key = device.line
        self.turns = Turns(monotonic)
        self.generation = 0  # increases with every successful connect
        self._device = device  # connection settings come from the first device on the line
        self._framing: frames.Framing = "socket" if device.transport == "tcp" else "rtu"
        self._backoff = backoff
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._client: Any = None
        self._connect_failures = 0
        self._next_connect = 0.0
        self._expected: frames.Expected | None = None  # the reply the outstanding request allows
        self._rejected: asyncio.Future[str] | None = None  # resolved with the reason a reply was refused
        self._received = False  # bytes arrived since the last request was sent
        self._lost = False  # the peer closed the connection since the last request was sent

    # -- connection

    def _new_client(self) -> Any:
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        pymodbus_log = logging.getLogger("pymodbus")
        if pymodbus_log.level == logging.NOTSET:
            # pymodbus logs every timeout as an ERROR line of its own; our status and
            # "device offline" lines already report them once, with the device named.
            pymodbus_log.setLevel(logging.CRITICAL)
        d = self._device
        hooks = dict(trace_pdu=_guard, trace_packet=self._on_packet, trace_connect=self._on_connect)
        common = dict(timeout=d.timeout, retries=0, reconnect_delay=0, name=d.line, **hooks)
        if d.transport == "rtu":
            assert d.serial is not None
            s = d.serial
            client = AsyncModbusSerialClient(s.port, framer=FramerType.RTU, baudrate=s.baudrate, parity=s.parity,
                                             stopbits=s.stopbits, bytesize=s.bytesize, **common)
        else:
            framer = FramerType.RTU if d.transport == "rtu_over_tcp" else FramerType.SOCKET
            client = AsyncModbusTcpClient(d.host, port=d.port, framer=framer, **common)
        # pymodbus drops, unseen by any hook, whatever arrives while its buffer holds more than one
        # frame; let every byte reach `_on_packet`, which refuses anything beyond the one reply.
        client.ctx.max_buffer_size = 1 << 30
        return client

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._expected, self._received = frames.expect(data, self._framing), False
            return data
        if not data:
            return data
        self._received = True
        if self._expected is None:
            self._refuse(f"{len(data)} bytes while no request was outstanding")
            return b""
        try:
            if frames.check(self._expected, data) == "complete":
                self._expected = None  # anything after the reply is unsolicited
        except frames.MalformedReply as exc:
            self._refuse(str(exc))
            return b""  # pymodbus never decodes it
        return data

    def _refuse(self, reason: str) -> None:
        """Fail the outstanding request with `reason` and hear nothing more from this peer."""
        self._expected = None
        if self._rejected is not None and not self._rejected.done():
            self._rejected.set_result(reason)
        else:
            log.warning("modbus unsolicited bytes line=%s reason=%r action=reconnect", self.key, reason)
        if self._client is not None:
            self._client.close()

    def _on_connect(self, connected: bool) -> None:
        if not connected:
            self._lost = True

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def ensure_connected(self, timeout: float, pause_after_connect: float) -> None:
        """Connect if needed, or raise ModbusReadError("backoff"/"dns_failed"/"connect_failed")."""
        if self.connected:
            return
        now = self._monotonic()
        if now < self._next_connect:
            raise ModbusReadError("backoff", f"reconnecting to {self.key} in {self._next_connect - now:.1f} s")
        self.drop()
        await self._resolve(timeout)
        self._client = self._new_client()
        try:
            ok = await asyncio.wait_for(self._client.connect(), timeout)
        except (TimeoutError, OSError) as exc:
            ok, reason = False, str(exc) or type(exc).__name__
        else:
            reason = "connection refused or port unavailable"
        if not ok:
            self._failed_to_connect("connect_failed", f"cannot connect to {self.key}: {reason}")
        self._connect_failures = 0
        self._lost = False
        self.generation += 1
        log.info("modbus connected line=%s generation=%d", self.key, self.generation)
        if pause_after_connect:
            await asyncio.sleep(pause_after_connect)

    async def _resolve(self, timeout: float) -> None:
        """Look the host name up first, so a name that does not resolve is reported as such."""
        d = self._device
        if d.transport == "rtu" or _is_address(d.host):
            return
        try:
            await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(d.host, d.port, type=socket.SOCK_STREAM),
                                   timeout)
        except socket.gaierror as exc:
            self._failed_to_connect("dns_failed", f"cannot resolve {d.host}: {exc.strerror or exc}")
        except TimeoutError:
            self._failed_to_connect("dns_failed", f"cannot resolve {d.host}: no answer within {timeout:.3g} s")

    def _failed_to_connect(self, kind: str, message: str) -> None:
        self.drop()
        self._connect_failures += 1
        delay = self._backoff.delay(self._connect_failures, self._rng.random)
        self._next_connect = self._monotonic() + delay
        raise ModbusReadError(kind, f"{message}; retry in {delay:.1f} s")

    def drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- requests (call during a turn: `async with line.turns.turn()` or an idle slot)

    async def _execute(self, unit: int, call: Callable[[], Any], timeout: float) -> Any:
        if self._client is None:
            raise ModbusReadError("connection_reset", f"not connected to {self.key}")
        self._client.ctx.comm_params.timeout_connect = timeout  # per device on a shared line
        self._lost = False
        rejected = self._rejected = asyncio.get_running_loop().create_future()
        request = asyncio.ensure_future(_awaited(call))
        try:
            await asyncio.wait((request, rejected), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._rejected = None
            request.cancel()  # when refused (or we are cancelled): stop waiting for the reply
        if rejected.done():
            self.drop()
            raise ModbusReadError("malformed_reply", f"malformed reply from unit {unit} on {self.key}: "
                                                     f"{rejected.result()}")
        return self._response(unit, request, timeout)

    def _response(self, unit: int, request: asyncio.Future[Any], timeout: float) -> Any:
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        try:
            response = request.result()
        except (ModbusIOException, ConnectionException, TimeoutError, OSError):
            kind = "connection_reset" if self._lost or not self.connected else (
                "malformed_reply" if self._received else "timeout")
            self.drop()  # a late or garbled answer must not be read as the next one
            message = {"connection_reset": f"{self.key} closed the connection",
                       "malformed_reply": f"incomplete reply from unit {unit} on {self.key} within {timeout:.3g} s",
                       "timeout": f"no reply from unit {unit} on {self.key} within {timeout:.3g} s"}[kind]
            raise ModbusReadError(kind, message) from None
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            kind = EXCEPTION_KINDS.get(code, f"exception_{code}")
            raise ModbusReadError(kind, f"Modbus exception {code} ({kind})", code)
        return response

    async def read(self, unit: int, table: str, start: int, count: int, timeout: float) -> list[int] | list[bool]:
        fc = function_code(table)
        assert fc in READ_FUNCTION_CODES
        method = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding_registers",
                  4: "read_input_registers"}[fc]
        client = self._client
        response = await self._execute(unit, lambda: getattr(client, method)(start, count=count, device_id=unit),
                                       timeout)
        # `frames.check` held the reply to the byte count the request allows.
        return list(response.bits[:count]) if fc in (1, 2) else list(response.registers)

    async def read_identity(self, unit: int, timeout: float) -> dict[str, str]:
        client = self._client
        response = await self._execute(unit, lambda: client.read_device_information(read_code=1, device_id=unit),
                                       timeout)
        info = getattr(response, "information", {}) or {}
        out = {}
        for object_id, name in IDENTITY_OBJECTS.items():
            value = info.get(object_id)
            if isinstance(value, bytes):
                out[name] = value.decode("ascii", errors="replace").strip("\x00 ")
        return out


async def _awaited(call: Callable[[], Any]) -> Any:
    return await call()  # pymodbus raises "not connected" before it returns an awaitable


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Lines:
    """The lines of a config: devices sharing host:port (or a serial port) get the same one."""

    def __init__(self, backoff: Backoff = Backoff(), *, rng: random.Random | None = None) -> None:
        self._lines: dict[str, Line] = {}
        self._backoff = backoff
        self._rng = rng

    def for_device(self, device: DeviceConfig) -> Line:
        line = self._lines.get(device.line)
        if line is None:
            line = self._lines[device.line] = Line(device, self._backoff, rng=self._rng)
        return line

    def close(self) -> None:
        for line in self._lines.values():
            line.drop()
