"""`edge-agent collect NAME`: run one collector once and print what it would publish."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.cli.common import EXIT_OK, EXIT_USAGE, config_argument, fail, load_config

if TYPE_CHECKING:
    from agent.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="run one collector once and print what it would publish",
                       description="Without -c, host, patches and posture run on their defaults.")
    p.add_argument("name", help="collector: host, patches, posture, or modbus/<device>")
    config_argument(p, required=False)
    p.add_argument("--json", action="store_true", help="print the message bodies as JSON")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="read another system root (e.g. a mounted disk image), default /")
    p.set_defaults(handler=handle)


def default_config() -> Config:
    """Enough config to run host, patches and posture once without a config file."""
    import socket

    from agent.config import validate

    return validate({"node": {"id": socket.gethostname()[:64] or "local"},
                     "signing": {"key_file": "/dev/null"}, "state_dir": "/nonexistent"}, "(defaults)")


def flatten(value: Any, prefix: str = "") -> Iterator[str]:
    """`dotted.path = value` lines, for reading a body in a terminal."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield f"{prefix} = {value}"


def handle(args: argparse.Namespace) -> int:
    import asyncio

    from agent.collectors import registry

    config = load_config(args.config) if args.config else default_config()
    try:
        collector = registry.build_one(args.name, config, root=args.root)
    except registry.UnknownCollector as exc:
        return fail(str(exc), EXIT_USAGE)
    for reading in asyncio.run(registry.collect_once(collector)):
        if args.json:
            print(json.dumps({"kind": reading.kind, "subject": reading.subject, "body": reading.body},
                             indent=2, sort_keys=True))
        else:
            print(f"# {reading.stream}")
            for line in flatten(reading.body):
                print(line)
    return EXIT_OK
