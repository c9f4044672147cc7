"""The agent side by side with the Python Modbus-to-MQTT bridges plant engineers already use.

One run, one workload, the contenders taking turns (agent, peer 1, peer 2, agent, ...):

  - workload: a PLC simulator (edge-sim's `Simulator`, in a child process so the bench can
    read its request counter) serving units 1-4 with the `holding_100` profile (100 uint16
    holding registers each, 400 points), polled every 1 s; a private Mosquitto on loopback;
  - the agent: `edge-agent run` with host, patches and posture collectors off (signing, the
    spool and QoS 1 kept); in the full run once more with the default collectors on;
  - the peers, at their defaults (QoS 0, no signing, no buffering), publishing every point
    every cycle as one JSON object per device: modbus4mqtt 0.7.1 (one process per device, as
    it polls one device per process) and modpoll2mqtt 2.4.1 (one process for all four).
    They pin conflicting pymodbus and paho-mqtt majors, so each gets its own throwaway venv
    under ~/.cache/edge-agent-bench/peers-venv/ (reused when present; --peers-dir to move it).
    modpoll2mqtt 2.4.1 busy-loops a core until it receives one message on its `get` topic:
    the bench sends it one (an empty request, which reads nothing) once it publishes.

For each contender, over a fixed window after a warm-up: CPU per published point (utime +
stime of the whole process tree from /proc/PID/stat, reaped children included, divided by
the points an independent MQTT subscriber counted by parsing each tool's own messages),
peak and steady (median) RSS summed over the tree, Modbus requests per cycle of all four
units and connections opened (counted by the simulator), and the mean cycle period (message
arrival times at the subscriber). Also, in the same run, two floors: the RSS of a process
that only imports the agent's libraries and sleeps (the "import floor", FLOOR_IMPORTS) and of
one that also imports the library modules the agent really uses (the "library floor", the
fair baseline: `import pydantic` alone loads a lazy stub); the agent's steady RSS above each.

Ends with the agent / best-peer ratios (best peer taken per figure), one `name: value unit`
per line. /proc counts CPU in 10 ms ticks per process, so a 60 s window resolves a figure to
about 2 %; --quick (CI smoke, about 20 s) uses 4 s windows and one round, which shows the
bench works, not what anything costs. --quick does not install peers: if they are not
installed yet, it measures the agent alone and says so.

    .venv/bin/python bench/peers.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from multiprocessing.connection import Connection

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.mosquitto import PrivateMosquitto  # noqa: E402
from simulators.plc import SimPoint, agent_points, load_profile  # noqa: E402

PROFILE = "holding_100"
UNITS = (1, 2, 3, 4)
INTERVAL_S = 1.0
NODE = "bench-agent"
AGENT = "agent"
DEFAULT_PEERS_DIR = Path("~/.cache/edge-agent-bench/peers-venv").expanduser()
# What the agent imports from its own dependencies (the memory target of #15 is relative to this).
FLOOR_IMPORTS = ("psutil, paho.mqtt.client, pymodbus.client, cryptography.hazmat.primitives.asymmetric.ed25519, "
                 "pydantic, asyncio, ssl, sqlite3, rfc8785")
# The library modules the agent really imports beyond FLOOR_IMPORTS, whose `import pydantic` loads a
# lazy stub: BaseModel lives in pydantic.main, and the first model imports pydantic.types,
# pydantic.fields and importlib.metadata (plugin discovery); the node key is PEM, read through
# cryptography's serialization. No model is built and no agent module imported. The "library floor"
# (both lists) is the fair baseline: any program using these libraries the way the agent does pays it.
LIBRARY_IMPORTS = ("pydantic.main, pydantic.types, pydantic.fields, importlib.metadata, "
                   "cryptography.hazmat.primitives.serialization")
FLOORS = {"import_floor": FLOOR_IMPORTS, "library_floor": f"{FLOOR_IMPORTS}, {LIBRARY_IMPORTS}"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20


# ----------------------------------------------------------------------------- process trees


def tree(roots: list[int]) -> list[int]:
    """The live pids of the roots and all their descendants."""
    pids = []
    for root in roots:
        try:
            pids += [root, *(child.pid for child in psutil.Process(root).children(recursive=True))]
        except psutil.NoSuchProcess:
            continue
    return pids


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()  # the command name may hold spaces


def tree_cpu_s(roots: list[int]) -> float:
    """utime + stime of every live process plus cutime + cstime (children it has reaped):
    each CPU second of the tree counted once, even for children that came and went."""
    ticks = 0
    for pid in tree(roots):
        try:
            ticks += sum(int(v) for v in _stat_fields(pid)[11:15])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ticks / CLOCK_TICKS


def tree_rss(roots: list[int]) -> int:
    total = 0
    for pid in tree(roots):
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


# ----------------------------------------------------------------------------- workload


def serve_simulator(conn: Connection, units: tuple[int, ...]) -> None:
    """Child process: the PLC simulator; answers "count" with (requests, connections) so far."""
    from simulators.plc import Simulator

    simulator = Simulator({unit: load_profile(PROFILE) for unit in units}, seed=1)
    conn.send(int(simulator.start("tcp", port=0).rpartition(":")[2]))
    while conn.recv() == "count":
        conn.send((simulator.request_count(), simulator.connections))
    simulator.stop()


class Subscriber:
    """Counts what a tool publishes by parsing its own messages; records each arrival time."""

    def __init__(self, port: int) -> None:
        self.parse: Callable[[str, bytes], int | None] = lambda topic, payload: None
        self.arrivals: list[tuple[float, str, int]] = []  # (monotonic time, topic, points)
        self.unparsable = 0
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-peers-subscriber")
        self.client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("the bench's subscriber could not subscribe to the private broker")

    def follow(self, parse: Callable[[str, bytes], int | None]) -> None:
        self.parse, self.arrivals = parse, []

    def _on_message(self, client, userdata, message) -> None:
        arrived = time.monotonic()
        try:
            points = self.parse(message.topic, message.payload)
        except (ValueError, KeyError, TypeError):
            self.unparsable += 1
            return
        if points is not None:
            self.arrivals.append((arrived, message.topic, points))

    def streams_seen(self) -> int:
        return len({topic for _, topic, _ in self.arrivals})

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Workload:
    modbus_port: int
    broker_port: int
    points: list[SimPoint]
    key: Path


# ----------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    launch: Callable[[Path, Workload], list[subprocess.Popen]]
    parse: Callable[[str, bytes], int | None]
    nudge: tuple[str, bytes] | None = None  # published once the tool is up


def _spawn(command: list[str], run_dir: Path, log_name: str = "log") -> subprocess.Popen:
    log = (run_dir / log_name).open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def agent_config(run_dir: Path, workload: Workload, collectors_off: bool) -> Path:
    point_tables = agent_points(load_profile(PROFILE))
    devices = "".join(f'[[modbus.devices]]\nname = "unit{unit}"\nhost = "127.0.0.1"\nport = {workload.modbus_port}\n'
                      f'unit = {unit}\ninterval = "{INTERVAL_S}s"\n\n{point_tables}\n' for unit in UNITS)
    collectors = "".join(f"[collectors.{name}]\nenabled = false\n\n" for name in ("host", "patches", "posture"))
    path = run_dir / "agent.toml"
    path.write_text(f'state_dir = "{run_dir}/state"\n\n[node]\nid = "{NODE}"\n\n'
                    f'[mqtt]\nurl = "mqtt://127.0.0.1:{workload.broker_port}"\n\n'
                    f'[signing]\nkey_file = "{workload.key}"\n\n{collectors if collectors_off else ""}{devices}')
    return path


def edge_agent_command() -> str:
    beside = Path(sys.executable).with_name("edge-agent")
    found = str(beside) if beside.exists() else shutil.which("edge-agent")
    if found is None:
        raise SystemExit("peers: edge-agent is not installed: run `bash scripts/test.sh` once, or pip install -e .")
    return found


def agent(collectors_off: bool) -> Contender:
    def launch(run_dir: Path, workload: Workload) -> list[subprocess.Popen]:
        return [_spawn([edge_agent_command(), "run", "-c", str(agent_config(run_dir, workload, collectors_off))],
                       run_dir)]

    def parse(topic: str, payload: bytes) -> int | None:
        if not topic.startswith(f"edge/{NODE}/modbus/"):
            return None
        return len(json.loads(payload)["body"]["values"])

    return Contender(AGENT if collectors_off else f"{AGENT}, default collectors", launch, parse)


def modbus4mqtt(script: Path, label: str) -> Contender:
    """One process per device (it polls one device per process), JSON mode: every point of a
    device under one topic (`json_key`), published every cycle (`pub_only_on_change: false`)."""
    def launch(run_dir: Path, workload: Workload) -> list[subprocess.Popen]:
        procs = []
        for unit in UNITS:
            registers = "".join(f"  - {{pub_topic: values, address: {p.address}, json_key: {p.name}, "
                                f"type: {p.codec.type}, pub_only_on_change: false}}\n" for p in workload.points)
            config = run_dir / f"unit{unit}.yaml"
            config.write_text(f"ip: 127.0.0.1\nport: {workload.modbus_port}\ndevice_address: {unit}\n"
                              f"update_rate: {INTERVAL_S:g}\nregisters:\n{registers}")
            procs.append(_spawn([str(script), "--hostname", "127.0.0.1", "--port", str(workload.broker_port),
                                 "--config", str(config), "--mqtt_topic_prefix", f"m4m/unit{unit}"],
                                run_dir, f"unit{unit}.log"))
        return procs

    def parse(topic: str, payload: bytes) -> int | None:
        return len(json.loads(payload)) if topic.startswith("m4m/unit") and topic.endswith("/values") else None

    return Contender(label, launch, parse)


def modpoll2mqtt(script: Path, label: str) -> Contender:
    """One process polling all four devices, one poll block of 100 registers each, JSON per device."""
    def launch(run_dir: Path, workload: Workload) -> list[subprocess.Popen]:
        first = min(p.address for p in workload.points)
        size = max(p.address for p in workload.points) + 1 - first
        rows = []
        for unit in UNITS:
            rows += [f"device,unit{unit},{unit}", f"poll,holding_register,{first},{size},BE_BE"]
            rows += [f"ref,{p.name},{p.address},{p.codec.type},r" for p in workload.points]
        config = run_dir / "devices.csv"
        config.write_text("\n".join(rows) + "\n")
        return [_spawn([str(script), "--tcp", "127.0.0.1", "--tcp-port", str(workload.modbus_port), "-r",
                        f"{INTERVAL_S:g}", "-f", str(config), "--mqtt-host", "127.0.0.1", "--mqtt-port",
                        str(workload.broker_port), "--no-output"], run_dir)]

    def parse(topic: str, payload: bytes) -> int | None:
        if not (topic.startswith("modpoll/unit") and topic.endswith("/data")):
            return None
        return len([key for key in json.loads(payload) if key != "timestamp"])

    return Contender(label, launch, parse, nudge=("modpoll/unit1/get", b"{}"))


# name -> (pip requirement, console script, contender); pinned to the versions #15's figures came from.
# Each gets its own venv: modbus4mqtt needs pymodbus < 3 and paho-mqtt < 2, modpoll2mqtt the opposite.
PEERS = {"modbus4mqtt": ("modbus4mqtt==0.7.1", "modbus4mqtt", modbus4mqtt),
         "modpoll2mqtt": ("modpoll2mqtt==2.4.1", "modpoll", modpoll2mqtt)}


def ensure_peer(peers_dir: Path, name: str, install: bool) -> Path | str:
    """The peer's console script, installing it into its own venv if allowed; or why not."""
    requirement, script, _ = PEERS[name]
    venv = peers_dir / name
    stamp = venv / f".installed-{requirement}"
    if stamp.exists():
        return venv / "bin" / script
    if not install:
        return f"not installed ({venv}); --quick does not install: run once without --quick"
    print(f"peers: installing {requirement} into {venv}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    for command in ([sys.executable, "-m", "venv", str(venv)],
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     requirement]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            return f"install failed: {' '.join(command[-2:])}: {(result.stderr.strip().splitlines() or ['?'])[-1]}"
    stamp.touch()
    return venv / "bin" / script


# ----------------------------------------------------------------------------- one measured run


@dataclass
class Result:
    name: str
    cpu_s: float
    window_s: float
    points: int
    messages_per_stream: list[int]
    periods_s: list[float]
    requests: int
    connections: int
    processes: int
    rss_samples: list[int] = field(default_factory=list)  # during the window
    rss_peak: int = 0  # from launch to the end of the window

    @property
    def cpu_us_per_point(self) -> float:
        return 1e6 * self.cpu_s / self.points if self.points else float("nan")

    @property
    def cycles(self) -> float:
        return statistics.mean(self.messages_per_stream) if self.messages_per_stream else 0.0


class Bench:
    def __init__(self, workload: Workload, subscriber: Subscriber, simulator: Connection, tmp: Path, settle_s: float,
                 window_s: float) -> None:
        self.workload, self.subscriber, self.simulator, self.tmp = workload, subscriber, simulator, tmp
        self.settle_s, self.window_s = settle_s, window_s
        self.runs = 0

    def simulator_counts(self) -> tuple[int, int]:
        self.simulator.send("count")
        return self.simulator.recv()

    def measure(self, contender: Contender) -> Result:
        self.runs += 1
        run_dir = self.tmp / f"run{self.runs}"
        run_dir.mkdir()
        self.subscriber.follow(contender.parse)
        procs = contender.launch(run_dir, self.workload)
        roots = [p.pid for p in procs]
        try:
            peak = self._warm_up(contender, procs, run_dir)
            result = self._window(contender.name, roots)
            result.rss_peak = max(peak, *result.rss_samples)
            self._check_alive(procs, run_dir)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        return result

    def _warm_up(self, contender: Contender, procs: list[subprocess.Popen], run_dir: Path) -> int:
        """Until every device has published once, then `settle_s`; returns the peak tree RSS seen."""
        roots, peak = [p.pid for p in procs], 0
        deadline = time.monotonic() + 30
        while self.subscriber.streams_seen() < len(UNITS):
            self._check_alive(procs, run_dir)
            if time.monotonic() > deadline:
                raise SystemExit(f"peers: {contender.name} published nothing from some devices in 30 s; "
                                 f"its log:\n{self._log_tail(run_dir)}")
            peak = max(peak, tree_rss(roots))
            time.sleep(0.1)
        if contender.nudge is not None:
            self.subscriber.client.publish(*contender.nudge, qos=1)
        settle_end = time.monotonic() + self.settle_s
        while time.monotonic() < settle_end:
            peak = max(peak, tree_rss(roots))
            time.sleep(0.25)
        return peak

    def _window(self, name: str, roots: list[int]) -> Result:
        requests0, connections0 = self.simulator_counts()
        cpu0, start = tree_cpu_s(roots), time.monotonic()
        end, rss = start + self.window_s, []
        while (now := time.monotonic()) < end:
            rss.append(tree_rss(roots))
            time.sleep(min(0.5, max(0.0, end - now)))
        cpu1, stop = tree_cpu_s(roots), time.monotonic()
        requests1, connections1 = self.simulator_counts()
        processes = len(tree(roots))
        time.sleep(0.3)  # messages of the window's last moment still on their way to the subscriber
        arrivals = [a for a in self.subscriber.arrivals if start <= a[0] <= stop]
        by_stream: dict[str, list[float]] = {}
        for arrived, topic, _ in arrivals:
            by_stream.setdefault(topic, []).append(arrived)
        periods = [(t[-1] - t[0]) / (len(t) - 1) for t in by_stream.values() if len(t) > 1]
        return Result(name, cpu1 - cpu0, stop - start, sum(a[2] for a in arrivals),
                      [len(t) for t in by_stream.values()], periods, requests1 - requests0,
                      connections1 - connections0, processes, rss)

    @staticmethod
    def _log_tail(run_dir: Path) -> str:
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                         for log in sorted(run_dir.glob("*log")))

    def _check_alive(self, procs: list[subprocess.Popen], run_dir: Path) -> None:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"peers: a contender's process exited early; its log:\n{self._log_tail(run_dir)}")


# ----------------------------------------------------------------------------- report


@dataclass
class Summary:
    """One contender over all its rounds."""
    name: str
    cpu_us_per_point: float
    points_per_s: float
    rss_peak_mib: float
    rss_steady_mib: float
    processes: int
    requests_per_cycle: float
    connections: int
    cycle_s: float


def summarise(results: list[Result]) -> list[Summary]:
    summaries = []
    for name in dict.fromkeys(r.name for r in results):
        runs = [r for r in results if r.name == name]
        points, cycles = sum(r.points for r in runs), sum(r.cycles for r in runs)
        summaries.append(Summary(
            name, 1e6 * sum(r.cpu_s for r in runs) / points if points else float("nan"),
            points / sum(r.window_s for r in runs), max(r.rss_peak for r in runs) / MIB,
            statistics.median(s for r in runs for s in r.rss_samples) / MIB, max(r.processes for r in runs),
            sum(r.requests for r in runs) / cycles if cycles else float("nan"), sum(r.connections for r in runs),
            statistics.mean(p for r in runs for p in r.periods_s) if any(r.periods_s for r in runs) else float("nan"),
        ))
    return summaries


def print_table(summaries: list[Summary]) -> None:
    print("| contender | CPU µs per point | points/s | peak RSS MiB | steady RSS MiB | processes "
          "| Modbus requests per cycle | new Modbus connections | mean cycle s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        print(f"| {s.name} | {s.cpu_us_per_point:.1f} | {s.points_per_s:.0f} | {s.rss_peak_mib:.1f} "
              f"| {s.rss_steady_mib:.1f} | {s.processes} | {s.requests_per_cycle:.2f} | {s.connections} "
              f"| {s.cycle_s:.3f} |")


def print_figures(summaries: list[Summary], floors_mib: dict[str, float], load_start: tuple[float, ...],
                  load_end: tuple[float, ...]) -> None:
    ours = next(s for s in summaries if s.name == AGENT)
    peers = [s for s in summaries if not s.name.startswith(AGENT)]
    for name, floor_mib in floors_mib.items():
        print(f"{name}_rss: {floor_mib:.1f} MiB")
    print(f"agent_cpu_per_point: {ours.cpu_us_per_point:.1f} us")
    print(f"agent_peak_rss: {ours.rss_peak_mib:.1f} MiB")
    print(f"agent_steady_rss: {ours.rss_steady_mib:.1f} MiB")
    for name, floor_mib in floors_mib.items():
        print(f"agent_steady_rss_over_{name}: {ours.rss_steady_mib - floor_mib:.1f} MiB")
    print(f"agent_requests_per_cycle: {ours.requests_per_cycle:.2f} requests")
    print(f"agent_cycle_period: {ours.cycle_s:.3f} s")
    print(f"load_1min_start: {load_start[0]:.2f} tasks")
    print(f"load_1min_end: {load_end[0]:.2f} tasks")
    if not peers:
        print("no peer measured: no ratios")
        return
    best_cpu = min(peers, key=lambda s: s.cpu_us_per_point)
    best_rss = min(peers, key=lambda s: s.rss_peak_mib)
    best_requests = min(peers, key=lambda s: s.requests_per_cycle)
    print(f"best peer for CPU: {best_cpu.name}; for memory: {best_rss.name}; for requests: {best_requests.name}")
    print(f"best_peer_cpu_per_point: {best_cpu.cpu_us_per_point:.1f} us")
    print(f"best_peer_peak_rss: {best_rss.rss_peak_mib:.1f} MiB")
    if best_cpu.cpu_us_per_point == 0:  # under one 10 ms tick in the window: happens with --quick's 4 s
        print(f"{best_cpu.name} used less CPU than /proc resolves in this window: no CPU ratio (use --seconds)")
    cpu_ratio = ours.cpu_us_per_point / best_cpu.cpu_us_per_point if best_cpu.cpu_us_per_point else float("nan")
    print(f"cpu_per_point_ratio: {cpu_ratio:.2f} x")
    print(f"rss_ratio: {ours.rss_peak_mib / best_rss.rss_peak_mib:.2f} x")
    print(f"requests_per_cycle_ratio: {ours.requests_per_cycle / best_requests.requests_per_cycle:.2f} x")


# ----------------------------------------------------------------------------- main


def find_peers(peers_dir: Path, install: bool) -> tuple[list[Contender], list[str]]:
    contenders, notes = [], []
    for name, (requirement, _, contender) in PEERS.items():
        found = ensure_peer(peers_dir, name, install)
        if isinstance(found, Path):
            contenders.append(contender(found, f"{requirement.replace('==', ' ')} (JSON)"))
        else:
            notes.append(f"{name}: {found}")
    return contenders, notes


def run_all(contenders: list[Contender], rounds: int, with_defaults: bool, settle_s: float,
            window_s: float) -> tuple[list[Result], dict[str, float]]:
    """Every contender, alternating, on one simulator and broker; returns the results and the floors (MiB)."""
    parent, child = multiprocessing.Pipe()
    simulator = multiprocessing.Process(target=serve_simulator, args=(child, UNITS), daemon=True)
    simulator.start()  # before any thread of this process exists (fork)
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp_name:
        tmp = Path(tmp_name)
        subprocess.run([edge_agent_command(), "keygen", "--key", str(tmp / "node.key")], check=True,
                       capture_output=True)
        broker = PrivateMosquitto.in_folder(tmp / "broker").start()
        floors = {name: subprocess.Popen([sys.executable, "-c", f"import {modules}, time\n"
                                          "print('imported', flush=True)\ntime.sleep(86400)"], stdout=subprocess.PIPE)
                  for name, modules in FLOORS.items()}
        subscriber = Subscriber(broker.port)
        try:
            workload = Workload(parent.recv(), broker.port, load_profile(PROFILE).points, tmp / "node.key")
            bench = Bench(workload, subscriber, parent, tmp, settle_s, window_s)
            plan = [c for _ in range(rounds) for c in contenders] + ([agent(False)] if with_defaults else [])
            results = []
            for number, contender in enumerate(plan, 1):
                results.append(result := bench.measure(contender))
                print(f"run {number}/{len(plan)} {result.name}: {result.cpu_us_per_point:.1f} µs/point, "
                      f"{result.points} points in {result.window_s:.1f} s, peak {result.rss_peak / MIB:.1f} MiB, "
                      f"{result.requests} requests", flush=True)
            for floor in floors.values():
                floor.stdout.readline()
            floor_mib = {name: tree_rss([floor.pid]) / MIB for name, floor in floors.items()}
        finally:
            subscriber.close()
            for floor in floors.values():
                floor.kill()
                floor.wait()
            broker.stop()
            parent.send("stop")
            simulator.join(10)
    if subscriber.unparsable:
        print(f"warning: {subscriber.unparsable} messages on data topics could not be parsed")
    return results, floor_mib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: 4 s windows, one round, no peer install "
                        "(about 30 s)")
    parser.add_argument("--rounds", type=int, default=None, help="turns per contender (default 2, quick 1)")
    parser.add_argument("--seconds", type=float, default=None, help="measurement window (default 60, quick 4)")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR,
                        help=f"where the peers' venvs live (default {DEFAULT_PEERS_DIR})")
    args = parser.parse_args()
    window_s = args.seconds or (4.0 if args.quick else 60.0)
    settle_s = 1.0 if args.quick else 10.0
    rounds = args.rounds or (1 if args.quick else 2)

    load_start = os.getloadavg()
    print("load average at start (1/5/15 min): " + " ".join(f"{v:.2f}" for v in load_start))
    peers, notes = find_peers(args.peers_dir, install=not args.quick)
    for note in notes:
        print(f"peer skipped: {note}")
    if not peers:
        print("measuring the agent alone (no peer available)")
    print(f"workload: {len(UNITS)} units x 100 holding registers ({PROFILE}) every {INTERVAL_S:g} s, "
          f"private Mosquitto; {rounds} round(s) of {window_s:.0f} s windows after {settle_s:.0f} s warm-up; "
          "peers at their defaults (QoS 0, no signing, no buffering), the agent with signing, spool, QoS 1",
          flush=True)
    results, floors_mib = run_all([agent(True), *peers], rounds, not args.quick, settle_s, window_s)
    load_end = os.getloadavg()
    print("load average at end (1/5/15 min): " + " ".join(f"{v:.2f}" for v in load_end))
    summaries = summarise(results)
    print_table(summaries)
    print_figures(summaries, floors_mib, load_start, load_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
