"""One poll cycle of one device: planned reads, decoding, hole learning, status.

`DevicePoller.poll()` does exactly one cycle and returns the reading's body (documented
in docs/modbus.md); the daemon's fixed grid decides when it runs. The poller holds its
line's lock for the cycle, so devices on one serial line or gateway take turns, and it
stops a cycle at the first timeout: a device that does not answer costs its line at most
one timeout (times retries) per cycle.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.collectors.modbus.codec import CodecError, PointCodec, Value, decode, decode_bit
from agent.collectors.modbus.config import DeviceConfig
from agent.collectors.modbus.planner import BIT_TABLES, Range, Read, Span, gaps, plan
from agent.collectors.modbus.transports import Line, ModbusReadError
from agent.core.timing import Backoff, now_ms

log = logging.getLogger(__name__)


@dataclass
class DeviceStatus:
    state: str = "offline"  # online | degraded | offline
    last_success_ms: int | None = None
    consecutive_failures: int = 0
    latency_ms: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    last_error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state, "last_success_ms": self.last_success_ms,
            "consecutive_failures": self.consecutive_failures, "latency_ms": self.latency_ms,
            "errors": dict(sorted(self.errors.items())), "last_error": self.last_error,
        }


@dataclass
class _Cycle:
    values: dict[str, Value] = field(default_factory=dict)
    point_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    successes: int = 0
    broken: ModbusReadError | None = None  # the device stopped answering mid-cycle


class DevicePoller:
    def __init__(self, device: DeviceConfig, line: Line, *, backoff: Backoff = Backoff(),
                 rng: random.Random | None = None, clock_ms: Callable[[], int] = now_ms,
                 monotonic: Callable[[], float] = time.perf_counter) -> None:
        self.device = device
        self.line = line
        self.status = DeviceStatus()
        self.identity: dict[str, str] | None = None
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._silent_cycles = 0  # cycles in a row the device did not answer at all
        self._next_attempt = 0.0  # monotonic time before which a silent device is not asked
        self._spans = {s.name: s for s in device.spans()}
        self._codecs: dict[str, PointCodec] = {p.name: p.codec(device.byte_order) for p in device.points}
        self._units = {p.name: p.unit for p in device.points if p.unit}
        self._filters = {p.name: (p.deadband, p.on_change) for p in device.points if p.deadband is not None or p.on_change}
        self._reported: dict[str, Value] = {}
        self._forbidden: dict[str, list[Range]] = device.refused_ranges()
        self._isolate: frozenset[str] = frozenset()
        self._identity_generation = -1  # line generation the identity was last asked on
        self._identity_unsupported = False
        self.reads = plan(self._spans.values(), device.limits(), self._forbidden)

    @property
    def learned_holes(self) -> dict[str, list[Range]]:
        configured = self.device.refused_ranges()
        return {t: [r for r in rs if r not in configured.get(t, [])] for t, rs in self._forbidden.items()
                if any(r not in configured.get(t, []) for r in rs)}

    # -- one cycle

    async def poll(self) -> dict[str, Any]:
        cycle = _Cycle()
        d = self.device
        wait = self._next_attempt - self._monotonic()
        if wait > 0:
            # A device that stopped answering is asked again after a growing pause, so that
            # on a shared serial line or gateway it stops costing its neighbours a timeout
            # every cycle.
            cycle.broken = ModbusReadError("backoff", f"{d.name} is not answering; next attempt in {wait:.1f} s")
        else:
            async with self.line.lock:
                await self._cycle(cycle)
            self._schedule_next_attempt(cycle)
        if cycle.broken is not None:
            for name in self._spans:
                if name not in cycle.values and name not in cycle.point_errors:
                    cycle.point_errors[name] = {"kind": cycle.broken.kind, "message": str(cycle.broken)}
        self._update_status(cycle)
        return self._body(cycle)

    async def _cycle(self, cycle: _Cycle) -> None:
        d = self.device
        try:
            await self.line.ensure_connected(d.timeout, d.pause_after_connect)
        except ModbusReadError as exc:
            cycle.broken = exc
            return
        await self._read_identity(cycle)
        for read in list(self.reads):
            if cycle.broken is not None:
                break
            await self._perform(read, cycle, depth=0)

    def _schedule_next_attempt(self, cycle: _Cycle) -> None:
        silent = not cycle.values and cycle.broken is not None and cycle.broken.kind in (
            "timeout", "malformed_reply", "connection_reset")
        if not silent:
            self._silent_cycles, self._next_attempt = 0, 0.0
            return
        self._silent_cycles += 1
        self._next_attempt = self._monotonic() + self._backoff.delay(self._silent_cycles, self._rng.random)

    async def _pause(self, cycle: _Cycle) -> None:
        if cycle.requests and self.device.pause_between_requests:
            await asyncio.sleep(self.device.pause_between_requests)

    async def _read_identity(self, cycle: _Cycle) -> None:
        if not self.device.identity or self._identity_unsupported or self._identity_generation == self.line.generation:
            return
        self._identity_generation = self.line.generation
        await self._pause(cycle)
        cycle.requests += 1
        try:
            identity = await self.line.read_identity(self.device.unit, self.device.timeout)
        except ModbusReadError as exc:
            # Optional in the standard: a refusal means "not supported", not a fault.
            self._identity_unsupported = exc.code in (1, 2) or exc.kind == "timeout"
            log.info("device identification unavailable device=%s error=%s", self.device.name, exc.kind)
            if exc.breaks_connection:
                try:
                    await self.line.ensure_connected(self.device.timeout, self.device.pause_after_connect)
                except ModbusReadError as again:
                    cycle.broken = again
            return
        if identity != self.identity:
            log.info("device identified device=%s identity=%s", self.device.name, identity)
        self.identity = identity or self.identity

    async def _request(self, read: Read, cycle: _Cycle) -> list[int] | list[bool]:
        d = self.device
        for attempt in range(d.retries + 1):
            await self._pause(cycle)
            cycle.requests += 1
            started = self._monotonic()
            try:
                values = await self.line.read(d.unit, read.table, read.start, read.count, d.timeout)
            except ModbusReadError as exc:
                self.status.errors[exc.kind] += 1
                self.status.last_error = {"kind": exc.kind, "message": str(exc), "ts_ms": self._clock_ms()}
                if exc.kind != "timeout" or attempt == d.retries:
                    raise
                await self.line.ensure_connected(d.timeout, d.pause_after_connect)
                continue
            self.status.latency_ms = round((self._monotonic() - started) * 1000, 2)
            cycle.successes += 1
            return values
        raise AssertionError("unreachable")

    async def _perform(self, read: Read, cycle: _Cycle, depth: int) -> None:
        try:
            raw = await self._request(read, cycle)
        except ModbusReadError as exc:
            if exc.breaks_connection:
                cycle.broken = exc
                return
            if exc.code == 2 and depth < 2 and len(read.points) > 1:
                await self._learn_hole(read, cycle)
                for sub in plan([self._spans[n] for n in read.points], self.device.limits(), self._forbidden,
                                self._isolate):
                    if cycle.broken is None:
                        await self._perform(sub, cycle, depth + 1)
                return
            for name in read.points:
                cycle.point_errors[name] = {"kind": exc.kind, "message": str(exc)}
            return
        self._decode(read, raw, cycle)

    async def _learn_hole(self, read: Read, cycle: _Cycle) -> None:
        """After Illegal Data Address on `read`: probe each gap it bridged and forbid those the
        device refuses; if every gap reads fine, the points themselves are refused: read them alone."""
        spans: list[Span] = list(self._spans.values())
        refused = []
        for first, last in gaps(read, spans):
            await self._pause(cycle)
            cycle.requests += 1
            try:
                await self.line.read(self.device.unit, read.table, first, last - first + 1, self.device.timeout)
            except ModbusReadError as exc:
                if exc.breaks_connection:
                    cycle.broken = exc
                    return
                refused.append((first, last))
        if refused:
            self._forbidden.setdefault(read.table, []).extend(refused)
            log.warning("modbus hole learned device=%s table=%s ranges=%s", self.device.name, read.table, refused)
        else:
            self._isolate |= frozenset(read.points)
            log.warning("modbus points read alone device=%s points=%s", self.device.name, ",".join(read.points))
        self.reads = plan(spans, self.device.limits(), self._forbidden, self._isolate)

    def _decode(self, read: Read, raw: list[Any], cycle: _Cycle) -> None:
        for name in read.points:
            span, codec = self._spans[name], self._codecs[name]
            offset = span.start - read.start
            try:
                if span.table in BIT_TABLES:
                    value = decode_bit(codec, bool(raw[offset]))
                else:
                    value = decode(codec, raw[offset : offset + span.width])
            except CodecError as exc:
                cycle.point_errors[name] = {"kind": exc.kind, "message": str(exc)}
                continue
            cycle.values[name] = value

    # -- status and body

    def _update_status(self, cycle: _Cycle) -> None:
        s = self.status
        before = s.state
        if cycle.values:
            s.last_success_ms = self._clock_ms()
            s.consecutive_failures = 0
            s.state = "degraded" if cycle.point_errors else "online"
        else:
            s.consecutive_failures += 1
            s.state = "offline"
            if cycle.broken is not None and cycle.broken.kind == "connect_failed":
                s.errors["connect_failed"] += 1
                s.last_error = {"kind": "connect_failed", "message": str(cycle.broken), "ts_ms": self._clock_ms()}
        if s.state != before:
            level = logging.WARNING if s.state != "online" else logging.INFO
            log.log(level, "device %s device=%s error=%s", s.state, self.device.name,
                    (s.last_error or {}).get("kind", "-"))

    def _body(self, cycle: _Cycle) -> dict[str, Any]:
        values, unchanged = {}, []
        for name, value in cycle.values.items():
            if self._suppressed(name, value):
                unchanged.append(name)
            else:
                values[name] = self._reported[name] = value
        body: dict[str, Any] = {
            "device": self.device.name,
            "unit": self.device.unit,
            "values": values,
            "units": {n: u for n, u in self._units.items() if n in values},
            "status": self.status.as_json(),
            "requests": cycle.requests,
        }
        if unchanged:
            body["unchanged"] = sorted(unchanged)
        if cycle.point_errors:
            body["point_errors"] = dict(sorted(cycle.point_errors.items()))
        if self.identity:
            body["identity"] = dict(self.identity)
        return body

    def _suppressed(self, name: str, value: Value) -> bool:
        if name not in self._filters or name not in self._reported:
            return False
        deadband, on_change = self._filters[name]
        last = self._reported[name]
        if deadband is not None and isinstance(value, (int, float)) and isinstance(last, (int, float)):
            return abs(value - last) <= deadband
        return on_change and value == last
