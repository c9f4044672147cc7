"""`edge-agent status`: the node's delivery state from the state directory, without the broker.

The daemon writes `status.json` (connection, publisher, storage, collectors/devices) at every
change and status report; the spool's figures (depth, drops, last acknowledged publish) are
read from the spool database itself, so they are current even when the daemon is stopped or
hung, and quarantined spools from their records beside the spool.
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
from agent.delivery import quarantine, session, spool


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
        "quarantined": quarantine.records(state_dir / spool.FILENAME),
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
    lines += _fault_lines(report, runtime, now_ms)
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


def _size(count: object) -> str:
    if not isinstance(count, int):
        return "?"
    return f"{count / 1024**2:.1f} MiB" if count >= 1024**2 else f"{count / 1024:.0f} KiB"


def _fault_lines(report: dict[str, Any], runtime: dict[str, Any], now_ms: int) -> list[str]:
    """Publisher, storage, sequence numbers, parts and quarantined spools: what faults left behind."""
    lines = []
    publisher = runtime.get("publisher") or {}
    if publisher:
        fault = f", {publisher['faults']} faults, last: {publisher['last_fault']}" if publisher.get("faults") else ""
        lines.append(f"publisher:      {publisher.get('state')}{fault}")
    storage = runtime.get("storage") or {}
    if storage:
        free = f"; {_size(storage.get('free_bytes'))} free, reserve {_size(storage.get('min_free'))}"
        if storage.get("state") == "ok":
            lines.append(f"storage:        ok (messages go to the spool on disk){free}")
        else:
            lines.append(f"storage:        DEGRADED: {storage.get('cause')} since {_when(storage.get('since_ms'), now_ms)}"
                         f"; {storage.get('memory_depth')} messages ({_size(storage.get('memory_bytes'))}) in memory, "
                         f"max {_size(storage.get('memory_max_bytes'))}{free}")
            lines.append(f"  last error:   {storage.get('last_error')}")
    sequence = runtime.get("sequence") or {}
    if sequence and not sequence.get("persisted", True):
        lines.append(f"sequence:       NOT persisted, numbering from memory ({sequence.get('write_error')})")
    if sequence.get("unsealable"):
        lines.append(f"unsealable:     {sequence['unsealable']} readings could not be sealed and were dropped (see the log)")
    troubled = {name: part for name, part in (runtime.get("parts") or {}).items() if part.get("state") != "running"}
    for name, part in sorted(troubled.items()):
        error = f", last error: {part['last_error']}" if part.get("last_error") else ""
        lines.append(f"part {name + ':':<10} {part.get('state')}, {part.get('restarts', 0)} restarts{error}")
    for record in report.get("quarantined") or []:
        lost = record.get("lost")
        lines.append(f"quarantined:    {record.get('path')} at {_when(record.get('at_ms'), now_ms)}: "
                     f"{record.get('salvaged', '?')} salvaged, {'unknown' if lost is None else lost} lost "
                     f"({record.get('problem')})")
    return lines


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
