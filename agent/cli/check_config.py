"""`edge-agent check-config`: validate a config file before the daemon uses it."""

from __future__ import annotations

import argparse

from agent.cli.common import EXIT_OK, config_argument, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a config file; exit 0 if valid, 2 if not",
                       description="Checks the text (every field, every device) and the files it names "
                                   "(signing key and its mode, TLS files, MQTT password). Prints one "
                                   "`FILE: field: problem and fix` line per problem and exits 2, or one line "
                                   "saying the config is valid. A folder holding agent.toml may be given.")
    config_argument(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_files=True)
    print(f"{args.config}: valid (node {config.node.id}, {len(config.modbus.devices)} Modbus devices)")
    return EXIT_OK
