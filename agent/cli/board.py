"""`edge-agent board`: the fleet readiness board, a verified live web page and JSON API on the
fleet store; with ingest (receive, verify, store) in the same process unless --no-ingest."""

from __future__ import annotations

import argparse
import logging

from agent.cli.common import EXIT_OK, EXIT_USAGE, fail, log_level_argument
from agent.cli.ingest import duration, ingest_arguments, ingest_settings, store_arguments, store_url, wait_for_stop

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("board", help="fleet readiness board: verified live web page and JSON API",
                       description="Subscribes with a shared subscription ($share/GROUP/PREFIX/#) plus plain "
                                   "subscriptions to the retained kinds, verifies every message, keeps it in the "
                                   "fleet store and serves the page at /, the JSON API at /api/fleet and "
                                   "/api/nodes/<id>, live updates at /api/events and the schema at /openapi.json. "
                                   "With --no-ingest it only serves the store (ingest runs as `edge-agent ingest`).")
    ingest_arguments(p, required=False)
    store_arguments(p)
    p.add_argument("--no-ingest", action="store_true", help="serve the store only; --broker and --trust not needed")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on (default 127.0.0.1:8080)")
    p.add_argument("--max-connections", type=int, default=256,
                   help="open HTTP connections (live pages included) before requests get 503 (default 256)")
    p.add_argument("--idle-timeout", type=duration, default=5.0,
                   help="close a connection that sends no request this long (default 5s)")
    log_level_argument(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.cli import logs
    from agent.fleet.store import StoreError, describe
    from agent.trust import keys
    from agent.web.board import Board
    from agent.web.server import HttpLimits, parse_listen

    logs.setup(args.log_level)
    if not args.no_ingest and (args.broker is None or args.trust is None):
        return fail("board: --broker and --trust are required (or --no-ingest to serve the store only)", EXIT_USAGE)
    try:
        trust = None if args.no_ingest else keys.TrustStore.load(args.trust)
        limits = HttpLimits(max_connections=max(1, args.max_connections), idle_timeout_s=args.idle_timeout)
        board = Board(None if args.no_ingest else args.broker, trust, db=store_url(args),
                      listen=parse_listen(args.listen), settings=ingest_settings(args), limits=limits)
    except (keys.KeyError_, StoreError, ValueError, OSError) as exc:
        return fail(f"board: {exc}", EXIT_USAGE)
    with board:
        source = "store only" if args.no_ingest else f"broker {args.broker}, {len(trust.keys)} trusted keys"
        log.info("board serving url=%s store=%s", board.url, describe(board.store_url))
        print(f"board: {board.url} ({source}, store {describe(board.store_url)})", flush=True)
        wait_for_stop()
    return EXIT_OK
