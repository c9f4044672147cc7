"""`edge-agent plan`: the reads the agent will send to each Modbus device, before it sends any."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent.cli.common import EXIT_OK, config_argument, load_config
from agent.collectors.modbus.config import ModbusConfig
from agent.collectors.modbus.planner import Read, function_code, plan


def device_plans(modbus: ModbusConfig) -> list[dict[str, Any]]:
    out = []
    for device in modbus.devices:
        reads = plan(device.spans(), device.limits(), device.refused_ranges())
        out.append({
            "device": device.name, "line": device.line, "unit": device.unit, "interval": device.interval,
            "points": len(device.points), "requests": len(reads), "reads": [_read(r) for r in reads],
        })
    return out


def _read(read: Read) -> dict[str, Any]:
    return {"table": read.table, "function_code": function_code(read.table), "start": read.start,
            "count": read.count, "points": list(read.points)}


def render(plans: list[dict[str, Any]]) -> str:
    if not plans:
        return "no Modbus devices configured"
    lines = []
    for p in plans:
        lines.append(f"{p['device']}  ({p['line']} unit {p['unit']}, every {p['interval']:g} s): "
                     f"{p['requests']} reads for {p['points']} points")
        lines.append(f"  {'table':9} {'fc':>2} {'start':>5} {'count':>5}  points")
        for r in p["reads"]:
            lines.append(f"  {r['table']:9} {r['function_code']:>2} {r['start']:>5} {r['count']:>5}  "
                         + ", ".join(r["points"]))
        lines.append("")
    return "\n".join(lines).rstrip()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="print the Modbus reads the agent will send to each device",
                       description="Per device: table, function code, start address (zero-based), count and "
                                   "the points each read covers; nothing is sent.")
    config_argument(p)
    p.add_argument("--json", action="store_true", help="a JSON list of devices, each with its reads")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    plans = device_plans(load_config(args.config).modbus)
    print(json.dumps(plans, indent=2) if args.json else render(plans))
    return EXIT_OK
