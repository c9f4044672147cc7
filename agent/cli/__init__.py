"""`edge-agent`: the agent's command line, one module per command.

Each command module offers `register(subparsers)` and a `handle(args) -> exit code`; handlers
import their work lazily, so a quick command (check-config, keygen) never pays for pymodbus
or paho. A command named first on the line gets only its own module imported and its own
parser built: the daemon (`edge-agent run`) does not carry the other twelve commands' code
(0.4 MiB, measured in docs/operations.md, "Side by side with peers").
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from agent import __version__
from agent.cli.common import EXIT_FAILED, EXIT_OK

# command -> its module in agent.cli, in the order --help lists them (board_access registers two).
COMMANDS = {"run": "run", "check-config": "check_config", "keygen": "keygen", "status": "status",
            "collect": "collect", "plan": "plan", "verify": "verify", "board": "board", "board-user": "board_access",
            "board-token": "board_access", "ingest": "ingest", "report": "report", "assets": "assets",
            "trust": "trust"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone (when it is one)."""
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Edge readiness agent: collects host health, patch posture and Modbus telemetry, "
                    "signs each message with the node's Ed25519 key and publishes it over MQTT.",
        epilog="The simulated plant, drills and the demo are `edge-sim` (edge-sim --help). "
               "Docs: README.md and docs/ (configuration, protocol, security, operations).")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for module in dict.fromkeys(modules):
        importlib.import_module(f"agent.cli.{module}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
