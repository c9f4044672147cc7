"""`edge-sim demo`: a whole plant on one machine, on embedded defaults.

Starts two simulated PLCs (separate processes, real Modbus TCP), a broker (Mosquitto when
installed, else a pure-Python one), the agent with a throwaway key, and a verifying
subscriber whose live view shows each node's host health and each device's latest values
with a "signature verified" mark; the fleet board (web page) runs beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from agent import config as config_mod
from agent.cli import logs as logsetup
from agent.fleet.subscription import Subscription
from agent.trust import keys
from agent.trust.verify import Verifier
from simulators.demo.view import PlantView
from simulators.localnet import free_port, wait_for_port

log = logging.getLogger(__name__)

# The simulated plant: the demo config's device port -> simulator profile served there.
PLANT = {15020: "packaging_line", 15021: "energy_meter"}


@contextlib.contextmanager
def _process(argv: list[str], log_path: Path, port: int) -> Iterator[subprocess.Popen]:
    with log_path.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def _broker(state: Path) -> Iterator[str]:
    port = free_port()
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if mosquitto:
        conf = state / "mosquitto.conf"
        # `user root` only matters when run as root: mosquitto would otherwise drop to a user
        # that cannot write the demo's state folder.
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        argv = [mosquitto, "-c", str(conf)]
    else:
        argv = [sys.executable, "-m", "simulators.demo.broker", str(port)]
    with _process(argv, state / "broker.log", port):
        yield f"mqtt://127.0.0.1:{port}"


def demo_config(state: Path, broker_url: str, ports: dict[int, int]) -> config_mod.Config:
    """The embedded demo config with this run's broker, ports and state folder."""
    data = tomllib.loads(resources.files("simulators.demo").joinpath("demo.toml").read_text())
    data["state_dir"] = str(state / "agent")
    data["signing"]["key_file"] = str(state / "node.key")
    data["mqtt"]["url"] = broker_url
    for device in data.get("modbus", {}).get("devices", []):
        device["port"] = ports.get(device.get("port"), device.get("port"))
    return config_mod.validate(data, "demo.toml", state)


def _run_agent(cfg: config_mod.Config, stop: threading.Event) -> None:
    from agent.daemon.service import Agent

    async def main() -> None:
        agent = Agent(cfg, keys.load_private(cfg.signing.key_file))
        runner = asyncio.create_task(agent.run())
        while not stop.is_set() and not runner.done():
            await asyncio.sleep(0.2)
        agent.stop_event.set()
        await runner

    asyncio.run(main())


def run(duration: float = 0, broker_url: str | None = None, state_dir: Path | None = None,
        board_listen: tuple[str, int] | None = ("127.0.0.1", 0)) -> int:
    state = state_dir or Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    logsetup.setup("INFO", stream=(state / "agent.log").open("a"))
    key_path = state / "node.key"
    if not key_path.exists():
        keys.generate(key_path)
    trust = keys.TrustStore()
    trust.add(keys.load_public(Path(f"{key_path}.pub")))
    ports = {configured: free_port() for configured in PLANT}
    print(f"edge-sim demo: state, keys and logs in {state}", flush=True)
    with contextlib.ExitStack() as stack:
        for configured, port in ports.items():
            argv = [sys.executable, "-m", "simulators.cli", "--port", str(port), "--profile", PLANT[configured]]
            stack.enter_context(_process(argv, state / f"plc-{PLANT[configured]}.log", port))
        url = broker_url or stack.enter_context(_broker(state))
        cfg = demo_config(state, url, ports)
        stop = threading.Event()
        agent_thread = threading.Thread(target=_run_agent, args=(cfg, stop), name="agent", daemon=True)
        subscription = stack.enter_context(Subscription(url, Verifier(trust), topic_filter=f"{cfg.mqtt.topic_prefix}/#"))
        agent_thread.start()
        board_url = ""
        if board_listen is not None:
            from agent.web.board import Board

            # A plain subscription: the pure-Python fallback broker may not know shared ones.
            board = Board(url, trust, listen=board_listen, group=None, prefix=cfg.mqtt.topic_prefix).start()
            stack.callback(board.stop)
            board_url = board.url
        view = PlantView(url, live=sys.stdout.isatty(), board=board_url)
        deadline = time.monotonic() + duration if duration else None
        try:
            while deadline is None or time.monotonic() < deadline:
                step = min(1.0, deadline - time.monotonic()) if deadline else 1.0
                for received in subscription.messages(time.monotonic() + max(step, 0.0)):
                    view.update(received)
                view.show(sys.stdout)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            agent_thread.join(15)
        view.show(sys.stdout, final=True)
    return 0 if view.rejected == 0 and view.verified > 0 else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-sim demo",
        description="A simulated plant (two PLCs), a local broker, the agent with a throwaway key, a live "
                    "verified terminal view and the fleet board, on embedded defaults. Ctrl-C or SIGTERM stops "
                    "all of it. Exit 0 when messages verified and none was rejected.")
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--broker", default=None, help="use this broker URL instead of starting one")
    p.add_argument("--state-dir", type=Path, default=None, help="keep keys, config and logs here")
    p.add_argument("--board-listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where the fleet board's web page listens (default: a free local port, printed)")
    p.add_argument("--no-board", action="store_true", help="terminal view only, no web board")
    return p


def main(argv: list[str]) -> int:
    from agent.web.server import parse_listen

    args = parser().parse_args(argv)
    try:
        board = None if args.no_board else parse_listen(args.board_listen)
    except ValueError as exc:
        print(f"edge-sim demo: --board-listen: {exc}", file=sys.stderr)
        return 2
    try:
        return run(duration=args.duration, broker_url=args.broker, state_dir=args.state_dir, board_listen=board)
    except KeyboardInterrupt:
        return 1
