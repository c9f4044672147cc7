"""`edge-agent status`: the node's delivery state from the state directory, without the broker.

The daemon writes `status.json` (connection, collectors/devices) at every status report;
the spool's figures (depth, drops, last acknowledged publish) are read from the spool
database itself, so they are current even when the daemon is stopped or hung.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent.cli.common import EXIT_FAILED, EXIT_OK, config_argument, load_config
from agent.core.timing import now_ms
from agent.daemon.runtime import read_runtime
from agent.delivery import session, spool


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gather(state_dir: Path) -> dict[str, Any]:
    """Everything `status` shows, as plain data."""
    runtime = read_runtime(state_dir)
    spool_error = ""
    try:
        stats = spool.read_stats_file(state_dir / spool.FILENAME)
    except sqlite3.Error as exc:  # e.g. not allowed to read the state dir: say so, no traceback
        stats, spool_error = None, f"cannot read {state_dir / spool.FILENAME}: {exc}"
    return {
        "state_dir": str(state_dir),
        "running": bool(runtime) and _pid_alive(runtime.get("pid")) and not runtime.get("stopped", False),
        "daemon": runtime,
        "session": session.read_state(state_dir),
        "spool": stats.as_dict() if stats else None,
        "spool_error": spool_error,
    }


def _when(ms: object, now_ms: int) -> str:
    if not isinstance(ms, int):
        return "never"
    seconds = max(0, (now_ms - ms) // 1000)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
    return f"{stamp} ({seconds} s ago)"


def render(report: dict[str, Any], now_ms: int) -> str:
    lines = [f"state dir:      {report['state_dir']}"]
    runtime = report["daemon"] or {}
    lines.append(f"agent:          {'running' if report['running'] else 'not running'}"
                 + (f" (pid {runtime.get('pid')}, session {runtime.get('session')})" if runtime else ""))
    broker = runtime.get("broker") or {}
    if broker:
        state = "connected" if broker.get("connected") else (
            f"disconnected ({broker['last_error']})" if broker.get("last_error") else "connecting")
        lines.append(f"broker:         {broker.get('url')} {state}")
    stats = report["spool"]
    if stats is None:
        lines.append(f"spool:          {report['spool_error'] or 'none yet'}")
    else:
        by_priority = ", ".join(f"{name} {count}" for name, count in stats["depth_by_priority"].items())
        lines.append(f"spool:          {stats['depth']} queued ({by_priority}; {stats['held']} held Will), "
                     f"{stats['bytes']} bytes, "
                     f"oldest {_when(stats['oldest_ms'], now_ms)}")
        dropped = ", ".join(f"{name} {count}" for name, count in stats["dropped"].items()) or "none"
        lines.append(f"dropped:        {stats['dropped_total']} ({dropped})")
        lines.append(f"last publish:   {_when(stats['last_ack_ms'], now_ms)} (acknowledged by the broker)")
    collectors = runtime.get("collectors") or {}
    if collectors:
        lines.append("collectors:")
        for name, health in sorted(collectors.items()):
            detail = f", last error: {health['last_error']}" if health.get("last_error") else ""
            lines.append(f"  {name:<24} {health.get('state')}, last ok {_when(health.get('last_ok_ms'), now_ms)}"
                         f"{detail}")
    if runtime:
        lines.append(f"updated:        {_when(runtime.get('updated_ms'), now_ms)}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="spool depth, drops, last publish and collectors, from the state dir",
                       description="Reads the state directory only (no broker needed): the one of the config "
                                   "(-c), or --state-dir DIR. Exit 1 if it holds nothing of the agent's.")
    config_argument(p)
    p.add_argument("--state-dir", type=Path, default=None, help="read this state directory instead of the config's")
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    state_dir = args.state_dir or load_config(args.config).state_dir
    report = gather(state_dir)
    if args.json:
        print(json.dumps(report, sort_keys=True, indent=2))
    else:
        print(render(report, now_ms()))
    return EXIT_OK if report["spool"] is not None or report["daemon"] is not None else EXIT_FAILED
