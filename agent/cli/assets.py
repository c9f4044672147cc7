"""`edge-agent assets`: the asset register from the fleet store, as CSV or JSON (every node and
every Modbus device: identity, criticality, business process, tolerated downtime, address,
first and last seen). The board serves the same at /assets, /assets.csv and /api/assets."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.common import EXIT_OK, EXIT_USAGE, fail
from agent.cli.ingest import store_arguments
from agent.cli.report import open_existing, write


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assets", help="the asset register from the fleet store (CSV or JSON)",
                       description="Every node and every Modbus device the fleet store knows: identity from the "
                                   "device identification (FC 43), criticality, business process, tolerated "
                                   "downtime, node, address, first and last seen.")
    store_arguments(p)
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here instead of standard output")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.fleet.store import StoreError
    from agent.web import assets
    from agent.web.view import asset_rows

    try:
        db = open_existing(args)
    except StoreError as exc:
        return fail(f"assets: {exc}", EXIT_USAGE)
    try:
        write(assets.render(asset_rows(db), args.format), args.output)
    except StoreError as exc:
        return fail(f"assets: {exc}", EXIT_USAGE)
    except OSError as exc:
        return fail(f"assets: {args.output}: {exc.strerror or exc}", EXIT_USAGE)
    finally:
        db.close()
    return EXIT_OK
