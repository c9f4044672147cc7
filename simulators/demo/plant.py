"""`edge-sim demo`: a whole plant on one machine, on embedded defaults.

Starts two simulated PLCs (separate processes, real Modbus TCP), a broker (Mosquitto when
installed, else a pure-Python one), the agent with a throwaway key, and a verifying
subscriber whose live view shows each node's host health and each device's latest values
with a "signature verified" mark; the fleet board (web page) runs beside it.

The demo's folder holds what a newcomer needs to go on with the `edge-agent` commands while
it runs: `agent.toml` (the config the agent runs on), `state/` (key, spool, status),
`trust/` (a trust store holding the node's public key) and the logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
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

PR_SET_PDEATHSIG = 1  # prctl(2)

# The simulated plant: the demo config's device port -> simulator profile served there.
PLANT = {15020: "packaging_line", 15021: "energy_meter"}


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo dies, even by SIGKILL, so nothing is left behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def _process(argv: list[str], log_path: Path, port: int) -> Iterator[subprocess.Popen]:
    with log_path.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
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


def write_config(folder: Path, broker_url: str, ports: dict[int, int]) -> Path:
    """`folder/agent.toml`: the embedded demo config, comments kept, with this run's broker and
    simulator ports (its relative paths resolve inside `folder`)."""
    lines = []
    for line in resources.files("simulators.demo").joinpath("demo.toml").read_text().splitlines():
        if line.startswith("url = "):
            line = f'url = "{broker_url}"'
        elif match := re.fullmatch(r"port = (\d+)", line):
            line = f"port = {ports.get(int(match.group(1)), int(match.group(1)))}"
        lines.append(line)
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def prepare_folder(folder: Path, config: config_mod.Config) -> keys.TrustStore:
    """The node key (kept across runs in the same folder) and a trust store folder holding it,
    filed as `edge-agent trust add NODE KEYFILE --trust DIR` would."""
    key_path = config.signing.key_file
    if not key_path.exists():
        keys.generate(key_path)
    trust_dir = folder / "trust"
    trust_dir.mkdir(exist_ok=True)
    keys.file_key(trust_dir, config.node.id, keys.load_public(Path(f"{key_path}.pub")))
    return keys.TrustStore.load(trust_dir)


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


def _banner(folder: Path, config_path: Path, url: str) -> None:
    print(f"edge-sim demo: config, keys, state and logs in {folder}\n"
          f"  status: edge-agent status -c {config_path}\n"
          f"  verify: edge-agent verify --broker {url} --trust {folder / 'trust'} --count 5", flush=True)


def run(duration: float = 0, broker_url: str | None = None, state_dir: Path | None = None,
        board_listen: tuple[str, int] | None = ("127.0.0.1", 0)) -> int:
    folder = (state_dir or Path(tempfile.mkdtemp(prefix="edge-sim-demo-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    logsetup.setup("INFO", stream=(folder / "agent.log").open("a"))
    ports = {configured: free_port() for configured in PLANT}
    with contextlib.ExitStack() as stack:
        for configured, port in ports.items():
            argv = [sys.executable, "-m", "simulators.cli", "--port", str(port), "--profile", PLANT[configured]]
            stack.enter_context(_process(argv, folder / f"plc-{PLANT[configured]}.log", port))
        url = broker_url or stack.enter_context(_broker(folder))
        config_path = write_config(folder, url, ports)
        cfg = config_mod.load(config_path)
        trust = prepare_folder(folder, cfg)
        _banner(folder, config_path, url)
        subscription = stack.enter_context(Subscription(url, Verifier(trust), topic_filter=f"{cfg.mqtt.topic_prefix}/#"))
        stop = threading.Event()
        agent_thread = threading.Thread(target=_run_agent, args=(cfg, stop), name="agent", daemon=True)
        agent_thread.start()
        board_url = ""
        if board_listen is not None:
            from agent.fleet.ingest import IngestSettings
            from agent.fleet.store import default_url
            from agent.web.board import Board

            # A plain subscription: the pure-Python fallback broker may not know shared ones. The
            # board's store is a SQLite file in the demo's folder.
            board = Board(url, trust, db=default_url(folder), listen=board_listen,
                          settings=IngestSettings(group=None, prefix=cfg.mqtt.topic_prefix)).start()
            stack.callback(board.stop)
            board_url = board.url
        view = PlantView(url, live=sys.stdout.isatty(), board=board_url)
        try:
            _show(view, subscription, duration)
        finally:
            stop.set()
            agent_thread.join(15)
        view.show(sys.stdout, final=True)
    return 0 if view.rejected == 0 and view.verified > 0 else 1


def _show(view: PlantView, subscription: Subscription, duration: float) -> None:
    """Feed verified messages to the view until `duration` is over (or Ctrl-C / SIGTERM)."""
    deadline = time.monotonic() + duration if duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            step = min(1.0, deadline - time.monotonic()) if deadline else 1.0
            for received in subscription.messages(time.monotonic() + max(step, 0.0)):
                view.update(received)
            view.show(sys.stdout)
    except KeyboardInterrupt:
        pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo the way Ctrl-C does: everything it started goes too


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
                   help="where the fleet board's web page listens, on loopback (default: a free local port, "
                        "printed)")
    p.add_argument("--no-board", action="store_true", help="terminal view only, no web board")
    return p


def main(argv: list[str]) -> int:
    from agent.core.settings import is_loopback
    from agent.web.server import parse_listen

    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        board = None if args.no_board else parse_listen(args.board_listen)
    except ValueError as exc:
        print(f"edge-sim demo: --board-listen: {exc}", file=sys.stderr)
        return 2
    if board is not None and not is_loopback(board[0]):
        # The demo's node reports this machine's real updates and hardening; its board has no login.
        print(f"edge-sim demo: --board-listen {args.board_listen}: the demo's board has no login and shows this "
              "machine's real updates and hardening, so it stays on loopback; from another machine use "
              "ssh -L 8080:127.0.0.1:PORT", file=sys.stderr)
        return 2
    try:
        return run(duration=args.duration, broker_url=args.broker, state_dir=args.state_dir, board_listen=board)
    except KeyboardInterrupt:
        return 1
    except BrokenPipeError:  # `edge-sim demo | head`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
