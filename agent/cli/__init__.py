"""`edge-agent`: the agent's command line, one module per command.

Each command module offers `register(subparsers)` and a `handle(args) -> exit code`; handlers
import their work lazily, so a quick command (check-config, keygen) never pays for pymodbus
or paho.
"""

from __future__ import annotations

import argparse
import os
import sys

from agent import __version__
from agent.cli import (
    assets,
    board,
    board_access,
    check_config,
    collect,
    ingest,
    keygen,
    plan,
    report,
    run,
    status,
    trust,
    verify,
)
from agent.cli.common import EXIT_FAILED, EXIT_OK

COMMANDS = (run, check_config, keygen, status, collect, plan, verify, board, board_access, ingest, report, assets,
            trust)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Edge readiness agent: collects host health, patch posture and Modbus telemetry, "
                    "signs each message with the node's Ed25519 key and publishes it over MQTT.",
        epilog="The simulated plant, drills and the demo are `edge-sim` (edge-sim --help). "
               "Docs: README.md and docs/ (configuration, protocol, security, operations).")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
