"""Steady RSS and CPU share of `edge-agent run` on the demo plant, against the import floor.

Starts the two demo PLC simulators and a private Mosquitto, runs the agent as its own
process with the demo config, and samples the agent's RSS and CPU time after a warm-up.
Baselines in the same run: a bare `python3` interpreter, the "import floor" (a process that
only imports the agent's libraries) and the "library floor" (the same plus the library modules
the agent actually imports: `import pydantic` alone loads a lazy stub), both as bench/peers.py
defines them (FLOORS), so the figures say what the agent adds whatever the machine.

--per-collector runs five agents side by side instead (each its own node id and state dir,
one plant and broker): one with no collector at all (the core: config, signing, spool,
publisher, status) and one with only host, only patches, only posture or only the Modbus
devices; what a collector adds is its agent's steady RSS minus the core's. The warm-up
lasts until every collector has reported once (the first patch scan included).

    python bench/footprint.py [--quick] [--seconds N] [--per-collector]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.trust import keys  # noqa: E402
from bench.peers import FLOORS  # noqa: E402
from simulators.demo import plant as demo  # noqa: E402
from simulators.localnet import free_port, wait_for_port  # noqa: E402

MIB = 2**20
FAMILIES = ("host", "patches", "posture")  # the [collectors.*] sections; Modbus is its devices


def write_config(state: Path, broker_port: int, ports: dict[int, int], only: str | None = None) -> Path:
    """The demo config on these ports; `only` (a collector family, "modbus" or "none") keeps
    just that collector on, under its own node id."""
    text = (ROOT / "simulators/demo/demo.toml").read_text()
    text = text.replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{broker_port}")
    for configured, port in ports.items():
        text = text.replace(f"port = {configured}", f"port = {port}")
    text = text.replace('state_dir = "state"', f'state_dir = "{state}/agent"')
    text = text.replace('key_file = "state/node.key"', f'key_file = "{state}/node.key"')
    if only is not None:
        text = text.replace('id = "demo-panel"', f'id = "footprint-{only}"')
        if only != "modbus":
            text = text[: text.index("[[modbus.devices]]")]
        for family in FAMILIES:
            if family != only:
                section = f"[collectors.{family}]\n"
                text = text.replace(section, f"{section}enabled = false\n") if section in text else \
                    f"{text}\n{section}enabled = false\n"
    path = state / "agent.toml"
    path.write_text(text)
    return path


@contextmanager
def plant(state: Path) -> Iterator[tuple[int, dict[int, int]]]:
    """The demo PLCs and a private Mosquitto: (broker port, configured port -> real port)."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker_port = free_port()
    (state / "mosquitto.conf").write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\nuser root\n")
    ports = {configured: free_port() for configured in demo.PLANT}
    procs = [subprocess.Popen([mosquitto, "-c", str(state / "mosquitto.conf")], stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "simulators.cli", "--port", str(port),
                                "--profile", demo.PLANT[configured]], stderr=subprocess.DEVNULL)
              for configured, port in ports.items()]
    try:
        for port in [broker_port, *ports.values()]:
            wait_for_port(port)
        yield broker_port, ports
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


@contextmanager
def baselines() -> Iterator[dict[str, psutil.Process]]:
    """A bare interpreter and the import floors, sleeping beside the agents."""
    codes = {"bare_python": "import time", **{name: f"import {modules}, time" for name, modules in FLOORS.items()}}
    procs = {name: subprocess.Popen([sys.executable, "-c", f"{code}\nprint(flush=True); time.sleep(3600)"],
                                    stdout=subprocess.PIPE) for name, code in codes.items()}
    try:
        for proc in procs.values():
            proc.stdout.readline()  # imports done
        yield {name: psutil.Process(proc.pid) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def start_agent(state: Path, broker_port: int, ports: dict[int, int], only: str | None) -> subprocess.Popen:
    state.mkdir(parents=True, exist_ok=True)
    keys.generate(state / "node.key")
    config = write_config(state, broker_port, ports, only)
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)],
                            stderr=(state / "agent.log").open("wb"))


def reported_once(state: Path) -> bool:
    """Every collector of this agent has produced a reading (status.json)."""
    try:
        collectors = json.loads((state / "agent" / "status.json").read_text())["collectors"]
    except (OSError, ValueError, KeyError):
        return False
    return all(health.get("last_ok_ms") for health in collectors.values())


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def sample(agents: dict[str | None, subprocess.Popen], window: float) -> tuple[dict, dict, dict]:
    """RSS (and for a single agent USS) samples every 0.5 s, and the CPU share over the window, per agent."""
    procs = {name: psutil.Process(agent.pid) for name, agent in agents.items()}
    cpu_before = {name: sum(proc.cpu_times()[:2]) for name, proc in procs.items()}
    started = time.monotonic()
    rss: dict = {name: [] for name in agents}
    uss: dict = {name: [] for name in agents}
    while time.monotonic() - started < window:
        for name, proc in procs.items():
            if len(procs) == 1:  # USS reads all of smaps: only where it is the figure asked for
                memory = proc.memory_full_info()
                uss[name].append(memory.uss)
            else:
                memory = proc.memory_info()
            rss[name].append(memory.rss)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    cpu = {name: (sum(proc.cpu_times()[:2]) - cpu_before[name]) / elapsed for name, proc in procs.items()}
    return rss, uss, cpu


def run(modes: list[str | None], warmup: float, window: float) -> tuple[dict, dict, dict, dict] | None:
    """Agents in `modes` side by side; (RSS samples, USS samples, CPU shares, baseline RSS) or None if one died."""
    with tempfile.TemporaryDirectory() as tmp, plant(Path(tmp)) as (broker_port, ports), baselines() as base:
        states = {mode: Path(tmp) / (mode or "demo") for mode in modes}
        agents = {mode: start_agent(states[mode], broker_port, ports, mode) for mode in modes}
        try:
            deadline = time.monotonic() + warmup
            time.sleep(min(5.0, warmup))
            while time.monotonic() < deadline and not all(reported_once(state) for state in states.values()):
                time.sleep(0.5)
            rss, uss, cpu = sample(agents, window)
            floors = {name: proc.memory_info().rss for name, proc in base.items()}
            if any(agent.poll() is not None for agent in agents.values()):
                for mode, agent in agents.items():
                    if agent.poll() is not None:
                        print((states[mode] / "agent.log").read_text(), file=sys.stderr)
                return None
        finally:
            # The agents first: with the broker gone they would spend their flush budget waiting.
            for agent in agents.values():
                agent.terminate()
            for agent in agents.values():
                agent.wait(30)
    return rss, uss, cpu, floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 20 s)")
    parser.add_argument("--seconds", type=float, default=None, help="measurement window (default 60, quick 10)")
    parser.add_argument("--per-collector", action="store_true", help="what each collector adds (five agents)")
    args = parser.parse_args()
    window = args.seconds or (10.0 if args.quick else 60.0)
    warmup = 8.0 if args.quick else 20.0
    modes: list[str | None] = ["none", *FAMILIES, "modbus"] if args.per_collector else [None]
    result = run(modes, warmup, window)
    if result is None:
        return 1
    rss, uss, cpu, floors = result
    floor, library = floors["import_floor"], floors["library_floor"]
    print(f"demo plant: 2 devices, 13 points, host every 2 s; window {window:.0f} s after a warm-up of up to {warmup:.0f} s")
    print(f"bare_python_rss: {floors['bare_python'] / MIB:.1f} MiB")
    print(f"import_floor_rss: {floor / MIB:.1f} MiB")
    print(f"library_floor_rss: {library / MIB:.1f} MiB")
    if not args.per_collector:
        steady = median(rss[None])
        print(f"agent_rss_median: {steady / MIB:.1f} MiB")
        print(f"agent_rss_peak: {max(rss[None]) / MIB:.1f} MiB")
        # USS: pages only this process uses (shared libraries excluded): what the agent costs the panel PC.
        print(f"agent_uss_median: {median(uss[None]) / MIB:.1f} MiB")
        print(f"agent_rss_over_import_floor: {(steady - floor) / MIB:.1f} MiB")
        print(f"agent_rss_over_library_floor: {(steady - library) / MIB:.1f} MiB")
        print(f"agent_rss_over_bare_python: {steady / floors['bare_python']:.2f} ratio")
        print(f"agent_cpu_share: {100 * cpu[None]:.2f} % of one core")
        return 0
    core = median(rss["none"])
    print(f"agent_core_rss: {core / MIB:.1f} MiB")
    print(f"agent_core_rss_over_import_floor: {(core - floor) / MIB:.1f} MiB")
    print(f"agent_core_rss_over_library_floor: {(core - library) / MIB:.1f} MiB")
    for mode in [*FAMILIES, "modbus"]:
        print(f"collector_{mode}_rss_added: {(median(rss[mode]) - core) / MIB:.1f} MiB")
    for mode in [*FAMILIES, "modbus"]:
        print(f"collector_{mode}_cpu_added: {100 * (cpu[mode] - cpu['none']):.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
