"""Steady RSS and CPU share of `edge-agent run` on the demo plant.

Starts the two demo PLC simulators and a private Mosquitto, runs the agent as its own
process with the demo config, and samples the agent's RSS and CPU time after a warm-up.
Baseline in the same run: a bare `python3` interpreter's RSS, so the ratio shows what the
agent adds over the interpreter whatever the machine.

    python bench/footprint.py [--quick] [--seconds N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.trust import keys
from simulators.demo import plant as demo  # noqa: E402
from simulators.localnet import free_port, wait_for_port  # noqa: E402


def write_config(state: Path, broker_port: int, ports: dict[int, int]) -> Path:
    text = (ROOT / "simulators/demo/demo.toml").read_text()
    text = text.replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{broker_port}")
    for configured, port in ports.items():
        text = text.replace(f"port = {configured}", f"port = {port}")
    text = text.replace('state_dir = "state"', f'state_dir = "{state}/agent"')
    text = text.replace('key_file = "state/node.key"', f'key_file = "{state}/node.key"')
    path = state / "agent.toml"
    path.write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 20 s)")
    parser.add_argument("--seconds", type=float, default=None, help="measurement window (default 60, quick 12)")
    args = parser.parse_args()
    window = args.seconds or (12.0 if args.quick else 60.0)
    warmup = 5.0 if args.quick else 15.0
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        keys.generate(state / "node.key")
        broker_port = free_port()
        (state / "mosquitto.conf").write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        ports = {configured: free_port() for configured in demo.PLANT}
        procs = [subprocess.Popen([mosquitto, "-c", str(state / "mosquitto.conf")], stderr=subprocess.DEVNULL)]
        procs += [subprocess.Popen([sys.executable, "-m", "simulators.cli", "--port", str(port),
                                    "--profile", demo.PLANT[configured]], stderr=subprocess.DEVNULL)
                  for configured, port in ports.items()]
        bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        try:
            for port in [broker_port, *ports.values()]:
                wait_for_port(port)
            config = write_config(state, broker_port, ports)
            agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)],
                                     stderr=(state / "agent.log").open("wb"))
            procs.append(agent)
            time.sleep(warmup)
            process = psutil.Process(agent.pid)
            cpu_before = sum(process.cpu_times()[:2])
            started = time.monotonic()
            rss, uss = [], []
            while time.monotonic() - started < window:
                memory = process.memory_full_info()
                rss.append(memory.rss)
                uss.append(memory.uss)
                time.sleep(0.5)
            cpu_share = (sum(process.cpu_times()[:2]) - cpu_before) / (time.monotonic() - started)
            bare_rss = psutil.Process(bare.pid).memory_info().rss
            if agent.poll() is not None:
                print((state / "agent.log").read_text(), file=sys.stderr)
                return 1
        finally:
            # The agent first: with the broker gone it would spend its flush budget waiting.
            for proc in [bare, *reversed(procs)]:
                proc.terminate()
                proc.wait(30)
    steady = sorted(rss)[len(rss) // 2]
    print(f"demo plant: 2 devices, 13 points, host every 2 s; window {window:.0f} s after {warmup:.0f} s warm-up")
    print(f"agent_rss_median: {steady / 2**20:.1f} MiB")
    print(f"agent_rss_peak: {max(rss) / 2**20:.1f} MiB")
    # USS: pages only this process uses (shared libraries excluded): what the agent costs the panel PC.
    print(f"agent_uss_median: {sorted(uss)[len(uss) // 2] / 2**20:.1f} MiB")
    print(f"bare_python_rss: {bare_rss / 2**20:.1f} MiB")
    print(f"agent_rss_over_bare_python: {steady / bare_rss:.2f} ratio")
    print(f"agent_cpu_share: {100 * cpu_share:.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
