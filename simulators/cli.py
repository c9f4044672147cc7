"""`edge-sim`: run a simulated PLC (Modbus TCP, RTU over TCP, or RTU on a serial port), or one of
the subcommands `demo` (a whole simulated plant with the agent) and `drill` (tabletop drills).

Subcommands are dispatched on the first argument; anything else is the simulator's own options.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from simulators.faults import KINDS, Fault
from simulators.plc import Profile, Simulator, agent_points, list_profiles, load_profile

SUBCOMMANDS: dict[str, str] = {"drill": "simulators.drill:main", "demo": "simulators.demo.plant:main"}  # name -> "module:function" taking argv


def _unit_spec(text: str) -> tuple[int, str | None]:
    unit, _, profile = text.partition("=")
    try:
        number = int(unit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write UNIT or UNIT=PROFILE, e.g. 1 or 2=energy_meter") from None
    if not 0 <= number <= 247:
        raise argparse.ArgumentTypeError(f"unit id {number} is outside 0..247")
    return number, profile or None


def _fault_spec(text: str) -> Fault:
    """KIND[:key=value,...], e.g. exception:code=6,unit=2 or hole:table=holding,start=10,end=19."""
    kind, _, rest = text.partition(":")
    fields: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        fields[key] = value if key == "table" else (float(value) if key == "delay" else int(value))
    try:
        return Fault(kind, **fields)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-sim",
        usage="edge-sim [demo | drill] ... | edge-sim [options]",
        description="Simulated PLC for the edge agent: Modbus server with process-like values, several unit ids, "
        "device identification (FC 43/14) and fault injection.",
        epilog="subcommands (each has its own --help):\n"
        "  edge-sim demo [--duration S]        a simulated plant, a broker, the agent and a verified live view\n"
        "  edge-sim drill --list | SCENARIO    tabletop drills played against a simulated plant and a board\n\n"
        "examples:\n"
        "  edge-sim --port 5020 --profile packaging_line\n"
        "  edge-sim --port 5021 --unit 1=packaging_line --unit 2=energy_meter\n"
        "  edge-sim --rtu-over-tcp --port 5022 --profile energy_meter --fault hole:table=input,start=4,end=5\n"
        "  edge-sim --serial --profile energy_meter       (prints the pty path to point the agent at)\n"
        "  edge-sim --agent-points energy_meter           (the [[modbus.devices.points]] an agent needs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", default="packaging_line", help="profile name or TOML file (default: packaging_line)")
    p.add_argument("--unit", action="append", type=_unit_spec, metavar="UNIT[=PROFILE]",
                   help="serve this unit id (repeatable); default: unit 1 with --profile")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5020, help="TCP port (default 5020; 0 picks a free one)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--rtu-over-tcp", action="store_true", help="RTU frames over TCP, like a serial gateway")
    mode.add_argument("--serial", nargs="?", const="pty", metavar="DEVICE",
                      help="RTU on a serial device; without DEVICE, on a new pty link whose client path is printed")
    p.add_argument("--fault", action="append", type=_fault_spec, default=[],
                   metavar="KIND[:k=v,...]", help=f"inject a fault from the start; kinds: {', '.join(KINDS)}; "
                   "keys: unit, table, start, end, code, delay")
    p.add_argument("--list-profiles", action="store_true", help="list the built-in profiles and exit")
    p.add_argument("--agent-points", metavar="PROFILE", help="print the agent's point config for PROFILE and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="log every connection (and pymodbus's debug output)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        module, _, function = SUBCOMMANDS[argv[0]].partition(":")
        return getattr(__import__(module, fromlist=[function]), function)(argv[1:])
    args = parser().parse_args(argv)
    if args.list_profiles:
        for name in list_profiles():
            print(f"{name:16} {load_profile(name).description}")
        return 0
    try:
        if args.agent_points:
            print(agent_points(load_profile(args.agent_points)))
            return 0
        units: dict[int, Profile] = {u: load_profile(p or args.profile) for u, p in (args.unit or [(1, None)])}
    except (ValueError, KeyError) as exc:
        print(f"edge-sim: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    simulator = Simulator(units)
    for fault in args.fault:
        simulator.faults.add(fault)
    kind, serial_port = "tcp", ""
    if args.rtu_over_tcp:
        kind = "rtu_over_tcp"
    elif args.serial:
        kind = "rtu"
        serial_port = args.serial
    served = ", ".join(f"unit {u}={p.name}" for u, p in units.items())

    def announce(endpoint: str) -> None:
        print(f"edge-sim: serving {kind} on {endpoint} ({served})", flush=True)

    try:
        asyncio.run(simulator.serve(kind, host=args.host, port=args.port, serial_port=serial_port, ready=announce))
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError) as exc:  # pymodbus reports a busy port as RuntimeError
        print(f"edge-sim: cannot serve {kind}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
