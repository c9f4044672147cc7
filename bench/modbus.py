"""Modbus polling benchmark: N simulated devices x M points.

Prints, ending with `name: value unit` lines:
  - requests per cycle (counted by the simulators) against the fewest possible for the
    gap policy (an independent dynamic program) and against one request per point;
  - agent CPU per 1,000 points: decode + seal alone, and a full cycle (pymodbus client,
    decode, body, seal), measured with process CPU time while the simulators run in a
    separate process;
  - p50/p99 lateness of poll starts against a 1 s grid (agent.core.schedule.next_tick, as the
    daemon schedules), first with all devices healthy, then with one dead device added,
    then with each device's grid shifted by a phase so they do not all wake at once;
  - the healthy devices' cadence (completed cycles per grid tick) with the dead device
    present, as a ratio to the all-healthy run.

Usage: .venv/bin/python bench/modbus.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.collectors.modbus.collector import ModbusCollector, build
from agent.config import validate
from agent.core.schedule import next_tick, spread_phases
from agent.core.timing import Backoff
from agent.trust.envelope import seal

TYPES = [("uint16", 1), ("int16", 1), ("float32", 2), ("float32", 2), ("uint32", 2), ("float64", 4)]


def profile_data(points: int, seed: int) -> dict[str, Any]:
    """A device with `points` points of mixed types, small gaps and an occasional large one."""
    rng = random.Random(seed)
    out, address, coil = [], 0, 0
    for i in range(points):
        if i % 20 == 19:
            out.append({"name": f"c{i}", "table": "coil", "address": coil, "type": "bool",
                        "square": {"period": 10.0, "duty": 0.5}})
            coil += rng.choice([1, 1, 2])
            continue
        type_, width = rng.choice(TYPES)
        out.append({"name": f"p{i}", "table": "holding", "address": address, "type": type_,
                    "sine": {"base": 100.0, "amplitude": 10.0, "period": 30.0}} if type_.startswith("float") else
                   {"name": f"p{i}", "table": "holding", "address": address, "type": type_,
                    "counter": {"start": 1000, "rate": 1.0}})
        address += width + (40 if i % 25 == 24 else rng.choice([0, 0, 0, 1, 2, 5]))
    return {"name": f"bench{seed}", "sizes": {"holding": address + 8, "coil": coil + 16, "input": 1, "discrete": 1},
            "identity": {"vendor_name": "bench", "product_code": "B", "revision": "1"}, "points": out}


# ----------------------------------------------------------------------------- simulator process


def _serve(conn: Any, profiles: list[dict[str, Any]], dead: int) -> None:
    from simulators.faults import Fault
    from simulators.plc import Simulator, parse_profile

    sims = [Simulator({1: parse_profile(p, "bench")}, seed=i) for i, p in enumerate(profiles)]
    for i, sim in enumerate(sims):
        if i >= len(sims) - dead:
            sim.faults.add(Fault("no_reply"))
        sim.start("tcp", port=0)
    conn.send([sim.endpoint for sim in sims])
    while conn.recv() != "stop":
        conn.send([sim.request_count(function_code=fc) for sim in sims for fc in (1, 2, 3, 4)])
    for sim in sims:
        sim.stop()


# ----------------------------------------------------------------------------- agent side


def minimum_reads(spans: list[Any], limit: int, gap: int) -> int:
    """Fewest valid reads (independent DP over disjoint spans sorted by address)."""
    by_table: dict[str, list[Any]] = {}
    for s in spans:
        by_table.setdefault(s.table, []).append(s)
    total = 0
    for table, items in by_table.items():
        items.sort(key=lambda s: s.start)
        lim, gp = (2000, 128) if table in ("coil", "discrete") else (limit, gap)
        best = [0] + [10**9] * len(items)
        for j in range(1, len(items) + 1):
            for i in range(j, 0, -1):
                if items[j - 1].end - items[i - 1].start + 1 > lim:
                    break
                if i < j and items[i].start - items[i - 1].end - 1 > gp:
                    break
                best[j] = min(best[j], best[i - 1] + 1)
        total += best[-1]
    return total


def make_config(endpoints: list[str], points_per_device: list[list[dict]], interval: float) -> Any:
    devices = []
    for i, (endpoint, points) in enumerate(zip(endpoints, points_per_device)):
        host, port = endpoint.rsplit(":", 1)
        devices.append({"name": f"dev{i:03d}", "host": host, "port": int(port), "unit": 1, "interval": interval,
                        "timeout": 0.5, "retries": 1, "points": [
                            {k: v for k, v in p.items() if k in ("name", "table", "address", "type")} for p in points]})
    return validate({"node": {"id": "bench"}, "signing": {"key_file": "k"}, "modbus": {"devices": devices}}, "bench")


class Sealer:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.seq = 0

    def __call__(self, readings: list[Any]) -> int:
        size = 0
        for r in readings:
            self.seq += 1
            size += len(seal(self.key, kid="bench", node="bench", topic=f"edge/bench/modbus/{r.subject}",
                             kind=r.kind, session="s", seq=self.seq, ts_ms=r.ts_ms or 0, body=r.body))
        return size


async def grid_run(collectors: list[ModbusCollector], interval: float, ticks: int, sealer: Sealer,
                   stagger: bool = False) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each collector on its own task on a grid; lateness of every start, cycles done.

    With `stagger`, the grids are shifted by the daemon's own `spread_phases`, so devices do
    not all wake at the same instant.
    """
    base = time.monotonic() + interval
    end = base + ticks * interval
    lateness: dict[str, list[float]] = {c.name: [] for c in collectors}
    done = {c.name: 0 for c in collectors}

    async def loop(c: ModbusCollector, phase: float) -> None:
        start = base + phase
        tick = start
        while tick < end:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            lateness[c.name].append(time.monotonic() - tick)
            sealer(await c.collect())
            done[c.name] += 1
            tick = next_tick(start, interval, time.monotonic())

    phases = spread_phases([interval] * len(collectors)) if stagger else [0.0] * len(collectors)
    await asyncio.gather(*(loop(c, phase) for c, phase in zip(collectors, phases)))
    return lateness, done


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(n: int, m: int, ticks: int, cycles: int) -> dict[str, tuple[float, str]]:
    profiles = [profile_data(m, seed) for seed in range(n + 1)]  # the last one is the dead device
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, profiles, 1), daemon=True)
    proc.start()
    endpoints = parent.recv()

    def counts() -> list[int]:
        parent.send("counts")
        raw = parent.recv()
        return [sum(raw[i * 4:(i + 1) * 4]) for i in range(len(raw) // 4)]

    config = make_config(endpoints, [p["points"] for p in profiles], 1.0)
    collectors = build(config, backoff=Backoff(base=1.0, cap=4.0))
    healthy, dead = collectors[:n], collectors[n]
    sealer = Sealer()
    figures: dict[str, tuple[float, str]] = {}

    # Requests per cycle and CPU of full cycles (after one warm-up cycle: connect + identity).
    await asyncio.gather(*(c.collect() for c in healthy))
    before = counts()
    cpu0 = time.process_time()
    points = 0
    for _ in range(cycles):
        for readings in await asyncio.gather(*(c.collect() for c in healthy)):
            points += sum(len(r.body["values"]) for r in readings)
            sealer(readings)
    cpu_full = time.process_time() - cpu0
    after = counts()
    measured = sum(a - b for a, b in zip(after[:n], before[:n])) / cycles
    minimum = sum(minimum_reads(c.poller.device.spans(), 125, c.poller.device.max_gap) for c in healthy)
    per_point = sum(len(c.poller.device.points) for c in healthy)
    print(f"{n} devices x {m} points: {measured:.1f} requests per cycle; minimum {minimum}; one per point {per_point}")
    figures["requests_per_cycle"] = (measured, "requests")
    figures["requests_minimum"] = (minimum, "requests")
    figures["requests_vs_minimum"] = (measured / minimum, "ratio")
    figures["requests_vs_one_per_point"] = (measured / per_point, "ratio")
    figures["cpu_full_cycle_per_1000_points"] = (cpu_full / points * 1e6, "ms")

    # Decode + body + seal alone, from a recorded cycle (no sockets, no pymodbus).
    poller = healthy[0].poller
    recorded = {}
    for read in poller.reads:
        recorded[read] = await poller.line.read(1, read.table, read.start, read.count, 1.0)
    from agent.collectors.modbus.poller import _Cycle
    from agent.core.reading import Priority, Reading

    rounds = 400 if cycles < 10 else 2000
    cpu0 = time.process_time()
    for _ in range(rounds):
        cycle = _Cycle()
        for read, raw in recorded.items():
            poller._decode(read, raw, cycle)
        sealer([Reading("modbus", poller._body(cycle), subject=poller.device.name, priority=Priority.BULK,
                        ts_ms=1)])
    cpu_pure = time.process_time() - cpu0
    figures["cpu_decode_seal_per_1000_points"] = (cpu_pure / (rounds * len(poller.device.points)) * 1e6, "ms")

    # Lateness on a 1 s grid, all healthy; then with the dead device added.
    late_ok, done_ok = await grid_run(healthy, 1.0, ticks, sealer)
    late_dead, done_dead = await grid_run(healthy + [dead], 1.0, ticks, sealer)
    late_staggered, _ = await grid_run(healthy, 1.0, ticks, sealer, stagger=True)
    all_ok = [x for c in healthy for x in late_ok[c.name]]
    healthy_with_dead = [x for c in healthy for x in late_dead[c.name]]
    figures["lateness_p50"] = (pct(all_ok, 0.5) * 1000, "ms")
    figures["lateness_p99"] = (pct(all_ok, 0.99) * 1000, "ms")
    figures["lateness_p99_healthy_with_dead_device"] = (pct(healthy_with_dead, 0.99) * 1000, "ms")
    figures["lateness_p99_staggered_phases"] = (pct([x for v in late_staggered.values() for x in v], 0.99) * 1000, "ms")
    cadence_ok = statistics.mean(done_ok[c.name] for c in healthy) / ticks
    cadence_dead = statistics.mean(done_dead[c.name] for c in healthy) / ticks
    figures["healthy_cadence"] = (cadence_ok, "cycles/tick")
    figures["healthy_cadence_with_dead_device"] = (cadence_dead, "cycles/tick")
    figures["healthy_cadence_ratio_dead_vs_none"] = (cadence_dead / cadence_ok, "ratio")
    figures["dead_device_cycles_per_tick"] = (done_dead[dead.name] / ticks, "cycles/tick")
    state = dead.poller.status
    print(f"dead device: state={state.state} errors={dict(state.errors)}")

    for c in collectors:
        await c.close()
    parent.send("stop")
    proc.join(10)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run, under 30 s")
    parser.add_argument("--devices", type=int)
    parser.add_argument("--points", type=int)
    args = parser.parse_args()
    n = args.devices or (8 if args.quick else 40)
    m = args.points or (60 if args.quick else 100)
    ticks, cycles = (5, 5) if args.quick else (30, 30)
    figures = asyncio.run(run(n, m, ticks, cycles))
    for name, (value, unit) in figures.items():
        print(f"{name}: {value:.3f} {unit}" if isinstance(value, float) else f"{name}: {value} {unit}")


if __name__ == "__main__":
    main()
