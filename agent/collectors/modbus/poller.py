"""One poll cycle of one device: planned reads, decoding, hole learning, status.

`DevicePoller.poll()` does exactly one cycle and returns the reading's body (documented
in docs/modbus.md); the daemon's fixed grid decides when it runs. A device that answers
takes its turn on its line (devices on one serial line or gateway take turns) and stops
its cycle at the first timeout. A device that does not answer (or never has yet) is
probed instead: its first read alone, without retries, in the line's idle time
(`Turns.idle_slot`), after a growing pause; when it answers, its cycle goes on as usual.
So a dead unit never holds the line at its neighbours' time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.collectors.modbus.block import BlockDecoder
from agent.collectors.modbus.codec import PointCodec, Value, decode_bit
from agent.collectors.modbus.config import DeviceConfig
from agent.collectors.modbus.planner import BIT_TABLES, Range, Read, Span, gaps, plan
from agent.collectors.modbus.transports import CONNECT_KINDS, SILENT_KINDS, Line, ModbusReadError
from agent.core.timing import Backoff, now_ms

log = logging.getLogger(__name__)

PROBE_FLOOR = 0.05  # s: the shortest probe timeout worth sending (or twice the last round trip, if longer)
PROBE_GUARD = 0.05  # s kept free before an answering neighbour is due: reconnecting, scheduling slack
PROBE_WAIT = 5.0  # s at most a probe waits for an idle slot (at most an interval), well inside the daemon's cut-off


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
    answered: bool = False  # some request got a reply (values or a Modbus exception)
    broken: ModbusReadError | None = None  # the cycle stopped early: the device is not answering


class DevicePoller:
    def __init__(self, device: DeviceConfig, line: Line, *, backoff: Backoff = Backoff(),
                 rng: random.Random | None = None, clock_ms: Callable[[], int] = now_ms) -> None:
        self.device = device
        self.line = line
        self.status = DeviceStatus()
        self.identity: dict[str, str] | None = None
        self._clock_ms = clock_ms
        self._monotonic = line.turns.now
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._answering: bool | None = None  # None until first asked; False while silent
        self._silent_cycles = 0  # cycles in a row the device did not answer at all
        self._next_probe = 0.0  # monotonic time before which a silent device is not asked
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
        self._blocks: dict[Read, BlockDecoder] = {}  # per read planned so far (a few; more only as holes are learned)

    @property
    def learned_holes(self) -> dict[str, list[Range]]:
        configured = self.device.refused_ranges()
        return {t: [r for r in rs if r not in configured.get(t, [])] for t, rs in self._forbidden.items()
                if any(r not in configured.get(t, []) for r in rs)}

    # -- one cycle

    async def poll(self) -> dict[str, Any]:
        cycle = _Cycle()
        d = self.device
        if self._answering is not False:  # a device not yet asked keeps its turns free too
            self.line.turns.expect(d.name, d.interval)
        if self._answering:
            async with self.line.turns.turn():
                await self._cycle(cycle, d.timeout, d.retries)
        else:
            await self._probe(cycle)
        self._note_answer(cycle)
        self._update_status(cycle)
        return self._body(cycle)

    async def _probe(self, cycle: _Cycle) -> None:
        """A cycle whose first read is a probe: alone, no retries, in the line's idle time."""
        d, turns = self.device, self.line.turns
        wait = self._next_probe - turns.now()
        if wait > 0:
            cycle.broken = ModbusReadError("backoff", f"{d.name} is not answering; next attempt in {wait:.1f} s")
            return
        floor = min(d.timeout, max(PROBE_FLOOR, 2 * (self.status.latency_ms or 0) / 1000))
        async with turns.idle_slot(d.name, d.timeout, floor, PROBE_GUARD + d.pause_after_connect,
                                   until=turns.now() + min(d.interval, PROBE_WAIT)) as granted:
            if granted is None:
                cycle.broken = ModbusReadError("backoff", f"{d.name} is not answering; its line had no idle time "
                                                          f"for a probe this cycle")
                return
            await self._cycle(cycle, granted, retries=0)
            if cycle.broken is not None and cycle.broken.kind in SILENT_KINDS:
                # The probe's connection was dropped: reconnect in this slot, not at a neighbour's turn.
                try:
                    await self.line.ensure_connected(d.timeout, d.pause_after_connect)
                except ModbusReadError:
                    pass  # the next turn on the line reports it

    async def _cycle(self, cycle: _Cycle, first_timeout: float, retries: int) -> None:
        """Every planned read; the first with `first_timeout` and `retries`, the identity after it."""
        d = self.device
        try:
            await self.line.ensure_connected(d.timeout, d.pause_after_connect)
        except ModbusReadError as exc:
            cycle.broken = exc
            return
        first, *rest = self.reads
        await self._perform(first, cycle, depth=0, timeout=first_timeout, retries=retries)
        if cycle.broken is None:
            await self._read_identity(cycle)
        for read in rest:
            if cycle.broken is not None:
                break
            await self._perform(read, cycle, depth=0)

    def _note_answer(self, cycle: _Cycle) -> None:
        """Answering devices keep their turns; a silent one is probed after a growing pause."""
        if cycle.answered:
            self._answering, self._silent_cycles, self._next_probe = True, 0, 0.0
        elif cycle.broken is not None and cycle.broken.kind in SILENT_KINDS:
            self.line.turns.forget(self.device.name)
            self._answering = False
            self._silent_cycles += 1
            self._next_probe = self._monotonic() + self._backoff.delay(self._silent_cycles, self._rng.random)

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

    async def _request(self, read: Read, cycle: _Cycle, timeout: float, retries: int) -> list[int] | list[bool]:
        d = self.device
        for attempt in range(retries + 1):
            await self._pause(cycle)
            cycle.requests += 1
            started = self._monotonic()
            try:
                values = await self.line.read(d.unit, read.table, read.start, read.count, timeout)
            except ModbusReadError as exc:
                cycle.answered |= exc.code is not None
                self._record(exc)
                if exc.kind != "timeout" or attempt == retries:
                    raise
                await self.line.ensure_connected(d.timeout, d.pause_after_connect)
                continue
            self.status.latency_ms = round((self._monotonic() - started) * 1000, 2)
            cycle.answered = True
            return values
        raise AssertionError("unreachable")

    def _record(self, exc: ModbusReadError) -> None:
        self.status.errors[exc.kind] += 1
        self.status.last_error = {"kind": exc.kind, "message": str(exc), "ts_ms": self._clock_ms()}

    async def _perform(self, read: Read, cycle: _Cycle, depth: int, timeout: float | None = None,
                       retries: int | None = None) -> None:
        d = self.device
        try:
            raw = await self._request(read, cycle, d.timeout if timeout is None else timeout,
                                      d.retries if retries is None else retries)
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
                cycle.answered |= exc.code is not None
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
        if read.table in BIT_TABLES:
            for name in read.points:
                cycle.values[name] = decode_bit(self._codecs[name], bool(raw[self._spans[name].start - read.start]))
            return
        decoder = self._blocks.get(read)
        if decoder is None:
            decoder = self._blocks[read] = BlockDecoder(
                [(name, self._spans[name].start - read.start, self._codecs[name]) for name in read.points], read.count)
        values, errors = decoder.decode(raw)
        cycle.values.update(values)
        for name, exc in errors.items():
            cycle.point_errors[name] = {"kind": exc.kind, "message": str(exc)}

    # -- status and body

    def _update_status(self, cycle: _Cycle) -> None:
        s = self.status
        before = s.state
        if cycle.values:
            s.last_success_ms = self._clock_ms()
            s.consecutive_failures = 0
            s.state = "degraded" if cycle.point_errors or cycle.broken else "online"
        else:
            s.consecutive_failures += 1
            s.state = "offline"
            if cycle.broken is not None and cycle.broken.kind in CONNECT_KINDS:
                self._record(cycle.broken)
        if s.state != before:
            level = logging.WARNING if s.state != "online" else logging.INFO
            log.log(level, "device %s device=%s error=%s", s.state, self.device.name,
                    (s.last_error or {}).get("kind", "-"))

    def _cycle_error(self, cycle: _Cycle) -> dict[str, Any] | None:
        """The device-level error: why the cycle stopped early, or why no point was read
        (then the only error in the body: one entry, not one per point)."""
        if cycle.broken is not None:
            unread = len(self._spans) if not cycle.values else sum(
                n not in cycle.values and n not in cycle.point_errors for n in self._spans)
            return {"kind": cycle.broken.kind, "message": str(cycle.broken), "points": unread}
        if cycle.values or not cycle.point_errors:
            return None
        kinds = Counter(e["kind"] for e in cycle.point_errors.values())
        kind = kinds.most_common(1)[0][0]
        message = next(e["message"] for e in cycle.point_errors.values() if e["kind"] == kind)
        return {"kind": kind, "message": message, "points": len(cycle.point_errors)}

    def _body(self, cycle: _Cycle) -> dict[str, Any]:
        values, unchanged = {}, []
        if self._filters:
            for name, value in cycle.values.items():
                if self._suppressed(name, value):
                    unchanged.append(name)
                else:
                    values[name] = self._reported[name] = value
        else:  # nothing to suppress: every value goes out (copied in C, not point by point)
            values = dict(cycle.values)
            self._reported.update(values)
        body: dict[str, Any] = {
            "device": self.device.name,
            "unit": self.device.unit,
            "line": self.device.line,
            "values": values,
            "units": {n: u for n, u in self._units.items() if n in values} if self._units else {},
            "status": self.status.as_json(),
            "requests": cycle.requests,
        }
        if unchanged:
            body["unchanged"] = sorted(unchanged)
        if cycle.point_errors and cycle.values:
            body["point_errors"] = dict(sorted(cycle.point_errors.items()))
        if (error := self._cycle_error(cycle)) is not None:
            body["error"] = error
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
