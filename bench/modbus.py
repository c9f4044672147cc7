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
    present, as a ratio to the all-healthy run;
  - a shared line (one Modbus TCP connection, and one RTU line on a pty pair): four healthy
    units alone, and four healthy units beside a silent one, polled side by side on a 1 s
    grid (all units of a line waking at once, as the daemon runs them, and staggered): the
    healthy units' cadence with the silent unit as a ratio to the line without it, and their
    longest gap between two readings;
  - agent CPU while a peer floods it with unsolicited frames and garbage, as a share of one
    core, against the same device answering normally;
  - bytes of the signed message of an offline 100-point device (silent, and refusing
    connections) against the same device online.

Usage: .venv/bin/python bench/modbus.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import random
import socket
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


def _serve(conn: Any, specs: list[dict[str, Any]]) -> None:
    """One simulator per spec: {"units": {unit: profile data}, "kind": "tcp"|"rtu", "faults": [(kind, unit)]}."""
    from simulators.faults import Fault
    from simulators.plc import Simulator, parse_profile

    sims = []
    for i, spec in enumerate(specs):
        sim = Simulator({unit: parse_profile(p, "bench") for unit, p in spec["units"].items()}, seed=i)
        for kind, unit in spec.get("faults", []):
            sim.faults.add(Fault(kind, unit=unit))
        sim.start(spec.get("kind", "tcp"), port=0, serial_port="pty")
        sims.append(sim)
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


def device_table(name: str, endpoint: str, unit: int, points: list[dict], kind: str = "tcp",
                 interval: float = 1.0) -> dict[str, Any]:
    table: dict[str, Any] = {"name": name, "unit": unit, "interval": interval, "timeout": 0.5, "retries": 1,
                             "points": [{k: v for k, v in p.items() if k in ("name", "table", "address", "type")}
                                        for p in points]}
    if kind == "rtu":
        table.update(transport="rtu", serial={"port": endpoint, "baudrate": 115200, "parity": "N"})
    else:
        host, port = endpoint.rsplit(":", 1)
        table.update(host=host, port=int(port))
    return table


def make_config(devices: list[dict[str, Any]]) -> Any:
    return validate({"node": {"id": "bench"}, "signing": {"key_file": "k"}, "modbus": {"devices": devices}}, "bench")


class Sealer:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.seq = 0

    def __call__(self, readings: list[Any]) -> int:
        return sum(self.sizes(readings))

    def sizes(self, readings: list[Any]) -> list[int]:
        out = []
        for r in readings:
            self.seq += 1
            out.append(len(seal(self.key, kid="bench", node="bench", topic=f"edge/bench/modbus/{r.subject}",
                                kind=r.kind, session="s", seq=self.seq, ts_ms=r.ts_ms or 0, body=r.body)))
        return out


async def grid_run(collectors: list[ModbusCollector], interval: float, ticks: int, sealer: Sealer,
                   phases: list[float] | None = None, lead: float = 0.2) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each collector on its own task on a grid, as the daemon runs it (first tick `lead` s
    from now, shifted by its phase); the lateness of every start and the time every cycle ended.
    """
    base = time.monotonic() + lead
    end = base + ticks * interval
    lateness: dict[str, list[float]] = {c.name: [] for c in collectors}
    finished: dict[str, list[float]] = {c.name: [] for c in collectors}

    async def loop(c: ModbusCollector, phase: float) -> None:
        start = base + phase
        tick = start
        while tick < end:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            lateness[c.name].append(time.monotonic() - tick)
            sealer(await c.collect())
            finished[c.name].append(time.monotonic())
            tick = next_tick(start, interval, time.monotonic())

    await asyncio.gather(*(loop(c, phase) for c, phase in zip(collectors, phases or [0.0] * len(collectors))))
    return lateness, finished


def longest_gap(ends: list[float]) -> float:
    """Longest time between two consecutive readings of one device."""
    return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SHARED_UNITS = 4  # healthy units on a shared line; the silent one is unit SHARED_UNITS + 1
BIG_DEVICE_POINTS = 100


def plant_specs(n: int, m: int) -> tuple[list[dict[str, Any]], dict[str, slice]]:
    """Every simulator the bench needs, started once in one process; where each section's are."""
    specs: list[dict[str, Any]] = [{"units": {1: profile_data(m, seed)}} for seed in range(n + 1)]
    specs[-1]["faults"] = [("no_reply", None)]  # the dead device on a port of its own
    shared_units = {u: profile_data(20, 100 + u) for u in range(1, SHARED_UNITS + 2)}
    for kind in ("tcp", "tcp", "rtu", "rtu"):  # a synchronized and a staggered grid of each
        specs.append({"kind": kind, "units": {u: p for u, p in shared_units.items() if u <= SHARED_UNITS}})
        specs.append({"kind": kind, "units": shared_units, "faults": [("no_reply", SHARED_UNITS + 1)]})
    big = {1: profile_data(BIG_DEVICE_POINTS, 200)}
    specs += [{"units": big}, {"units": big, "faults": [("flood", 1)]}, {"units": big, "faults": [("no_reply", 1)]}]
    where = {"plant": slice(0, n + 1), "shared": slice(n + 1, n + 9), "big": slice(n + 9, n + 12)}
    return specs, where


async def plant_figures(endpoints: list[str], profiles: list[dict[str, Any]], counts: Any, ticks: int, cycles: int,
                        sealer: Sealer) -> dict[str, tuple[float, str]]:
    """Requests, CPU per point, lateness and cadence of N devices (each on its own port) + a dead one."""
    n = len(profiles) - 1
    config = make_config([device_table(f"dev{i:03d}", e, 1, p["points"]) for i, (e, p) in
                          enumerate(zip(endpoints, profiles))])
    collectors = build(config, backoff=Backoff(base=1.0, cap=4.0))
    healthy, dead = collectors[:n], collectors[n]
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
    print(f"{n} devices x {len(profiles[0]['points'])} points: {measured:.1f} requests per cycle; minimum {minimum}; "
          f"one per point {per_point}")
    figures["requests_per_cycle"] = (measured, "requests")
    figures["requests_minimum"] = (minimum, "requests")
    figures["requests_vs_minimum"] = (measured / minimum, "ratio")
    figures["requests_vs_one_per_point"] = (measured / per_point, "ratio")
    figures["cpu_full_cycle_per_1000_points"] = (cpu_full / points * 1e6, "ms")
    figures["cpu_decode_seal_per_1000_points"] = (await decode_seal_cpu(healthy[0], cycles, sealer), "ms")

    # Lateness on a 1 s grid, all healthy; then with the dead device added.
    late_ok, done_ok = await grid_run(healthy, 1.0, ticks, sealer)
    late_dead, done_dead = await grid_run(healthy + [dead], 1.0, ticks, sealer)
    late_staggered, _ = await grid_run(healthy, 1.0, ticks, sealer, phases=spread_phases([(1.0, c.phase_group) for c in healthy]))
    all_ok = [x for c in healthy for x in late_ok[c.name]]
    healthy_with_dead = [x for c in healthy for x in late_dead[c.name]]
    figures["lateness_p50"] = (pct(all_ok, 0.5) * 1000, "ms")
    figures["lateness_p99"] = (pct(all_ok, 0.99) * 1000, "ms")
    figures["lateness_p99_healthy_with_dead_device"] = (pct(healthy_with_dead, 0.99) * 1000, "ms")
    figures["lateness_p99_staggered_phases"] = (pct([x for v in late_staggered.values() for x in v], 0.99) * 1000, "ms")
    cadence_ok = statistics.mean(len(done_ok[c.name]) for c in healthy) / ticks
    cadence_dead = statistics.mean(len(done_dead[c.name]) for c in healthy) / ticks
    figures["healthy_cadence"] = (cadence_ok, "cycles/tick")
    figures["healthy_cadence_with_dead_device"] = (cadence_dead, "cycles/tick")
    figures["healthy_cadence_ratio_dead_vs_none"] = (cadence_dead / cadence_ok, "ratio")
    figures["dead_device_cycles_per_tick"] = (len(done_dead[dead.name]) / ticks, "cycles/tick")
    state = dead.poller.status
    print(f"dead device: state={state.state} errors={dict(state.errors)}")
    for c in collectors:
        await c.close()
    return figures


async def decode_seal_cpu(collector: ModbusCollector, cycles: int, sealer: Sealer) -> float:
    """ms of CPU per 1,000 points to decode, build the body and seal, from a recorded cycle
    (no sockets, no pymodbus)."""
    from agent.collectors.modbus.poller import _Cycle
    from agent.core.reading import Priority, Reading

    poller = collector.poller
    recorded = {}
    for read in poller.reads:
        recorded[read] = await poller.line.read(1, read.table, read.start, read.count, 1.0)
    rounds = 400 if cycles < 10 else 2000
    cpu0 = time.process_time()
    for _ in range(rounds):
        cycle = _Cycle()
        for read, raw in recorded.items():
            poller._decode(read, raw, cycle)
        sealer([Reading("modbus", poller._body(cycle), subject=poller.device.name, priority=Priority.BULK,
                        ts_ms=1)])
    return (time.process_time() - cpu0) / (rounds * len(poller.device.points)) * 1e6


async def shared_line_figures(endpoints: list[str], ticks: int, sealer: Sealer) -> dict[str, tuple[float, str]]:
    """Four healthy units alone on a line, and beside a silent unit on another, side by side on
    a 1 s grid; over Modbus TCP and over RTU on a pty pair; all units of a line waking at the
    same instant (as the daemon starts the units of one line), and staggered across the second."""
    units = {u: profile_data(20, 100 + u)["points"] for u in range(1, SHARED_UNITS + 2)}
    lines: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for i, (kind, grid) in enumerate((k, g) for k in ("tcp", "rtu") for g in ("synchronized", "staggered")):
        for mix, endpoint, count in (("alone", endpoints[2 * i], SHARED_UNITS),
                                     ("mixed", endpoints[2 * i + 1], SHARED_UNITS + 1)):
            lines[kind, grid, mix] = [device_table(f"{kind}-{grid}-{mix}-{u}", endpoint, u, units[u], kind)
                                      for u in range(1, count + 1)]
    collectors = build(make_config([d for line in lines.values() for d in line]), backoff=Backoff(base=1.0, cap=4.0))
    phases = [p for (_, grid, _), line in lines.items()
              for p in (spread_phases([(1.0, str(u)) for u in range(len(line))]) if grid == "staggered"
                        else [0.0] * len(line))]
    _, finished = await grid_run(collectors, 1.0, ticks, sealer, phases=phases)
    figures: dict[str, tuple[float, str]] = {}
    for kind, grid, mix in lines:
        if mix == "alone":
            continue
        healthy = {m: [finished[f"modbus/{kind}-{grid}-{m}-{u}"] for u in range(1, SHARED_UNITS + 1)]
                   for m in ("alone", "mixed")}
        cadence = {m: statistics.mean(len(ends) for ends in healthy[m]) / ticks for m in healthy}
        gap = {m: max(map(longest_gap, healthy[m])) for m in healthy}
        name = f"shared_{kind}" + ("_staggered" if grid == "staggered" else "")
        if grid == "synchronized":
            figures[f"{name}_healthy_cadence_with_silent_unit"] = (cadence["mixed"], "cycles/tick")
        figures[f"{name}_healthy_cadence_ratio_silent_vs_none"] = (cadence["mixed"] / cadence["alone"], "ratio")
        if grid == "synchronized":
            figures[f"{name}_healthy_longest_gap_alone"] = (gap["alone"], "s")
        figures[f"{name}_healthy_longest_gap_with_silent_unit"] = (gap["mixed"], "s")
    for c in collectors:
        await c.close()
    return figures


async def cpu_use(collector: ModbusCollector, seconds: int, sealer: Sealer) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the agent while `collector` runs on a 1 s grid for `seconds`."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    await grid_run([collector], 1.0, seconds, sealer, lead=0.0)
    await collector.close()
    return time.process_time() - cpu0, time.monotonic() - wall0


async def big_device_figures(endpoints: list[str], requests: Any, seconds: int, sealer: Sealer
                             ) -> dict[str, tuple[float, str]]:
    """A 100-point device answering, flooding, silent, and refusing connections; `requests()`
    counts the requests each of the three simulators received."""
    points = profile_data(BIG_DEVICE_POINTS, 200)["points"]
    answering, flooding, silent = endpoints
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        refusing = f"127.0.0.1:{s.getsockname()[1]}"

    def collector(endpoint: str, name: str) -> ModbusCollector:
        return build(make_config([device_table(name, endpoint, 1, points)]), backoff=Backoff(base=1.0, cap=4.0))[0]

    figures: dict[str, tuple[float, str]] = {}
    healthy_cpu, healthy_wall = await cpu_use(collector(answering, "answering"), max(2, seconds // 2), sealer)
    flooded_before = requests()[1]
    flood_cpu, flood_wall = await cpu_use(collector(flooding, "flooding"), seconds, sealer)
    flooded = requests()[1] - flooded_before
    figures["cpu_share_answering_device"] = (healthy_cpu / healthy_wall * 100, "% of a core")
    figures["cpu_share_flooding_device"] = (flood_cpu / flood_wall * 100, "% of a core")
    figures["cpu_flood_vs_answering"] = (flood_cpu / flood_wall / (healthy_cpu / healthy_wall), "ratio")
    figures["cpu_per_flooded_request"] = (flood_cpu / max(1, flooded) * 1000, "ms")

    sizes: dict[str, list[int]] = {}
    for name, endpoint in (("online", answering), ("silent", silent), ("refusing", refusing)):
        c = collector(endpoint, name)
        sizes[name] = [size for _ in range(3) for size in sealer.sizes(await c.collect())]
        await c.close()
    online = max(sizes["online"][1:])  # the first also carries the identity
    figures["message_bytes_online_100_points"] = (online, "bytes")
    figures["message_bytes_offline_silent_100_points"] = (max(sizes["silent"]), "bytes")
    figures["message_bytes_offline_refusing_100_points"] = (max(sizes["refusing"]), "bytes")
    figures["message_bytes_offline_vs_online"] = (max(sizes["silent"] + sizes["refusing"]) / online, "ratio")
    return figures


async def run(n: int, m: int, ticks: int, cycles: int, shared_ticks: int, flood_seconds: int
              ) -> dict[str, tuple[float, str]]:
    specs, where = plant_specs(n, m)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, specs), daemon=True)
    proc.start()
    endpoints = parent.recv()

    def counts() -> list[int]:
        parent.send("counts")
        raw = parent.recv()
        return [sum(raw[i * 4:(i + 1) * 4]) for i in range(len(raw) // 4)]

    sealer = Sealer()
    figures = await plant_figures(endpoints[where["plant"]], [s["units"][1] for s in specs[where["plant"]]], counts,
                                  ticks, cycles, sealer)
    figures |= await shared_line_figures(endpoints[where["shared"]], shared_ticks, sealer)
    figures |= await big_device_figures(endpoints[where["big"]], lambda: counts()[where["big"]], flood_seconds,
                                        sealer)
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
    ticks, cycles, shared_ticks, flood_seconds = (3, 5, 8, 4) if args.quick else (30, 30, 30, 20)
    figures = asyncio.run(run(n, m, ticks, cycles, shared_ticks, flood_seconds))
    for name, (value, unit) in figures.items():
        print(f"{name}: {value:.3f} {unit}" if isinstance(value, float) else f"{name}: {value} {unit}")


if __name__ == "__main__":
    main()
