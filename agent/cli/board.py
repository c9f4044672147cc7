"""`edge-agent board`: the fleet readiness board, a verified live web page and JSON API on the
fleet store; with ingest (receive, verify, store) in the same process unless --no-ingest."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.common import EXIT_OK, EXIT_USAGE, fail, log_level_argument
from agent.cli.ingest import duration, ingest_arguments, ingest_settings, store_arguments, store_url, wait_for_stop

if TYPE_CHECKING:
    from agent.web.config import BoardConfig

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
    p.add_argument("-c", "--config", type=Path, default=None,
                   help="board config (TOML: listen, tls, proxy, session, login; docs/configuration.md)")
    p.add_argument("--listen", default=None,
                   help="HOST:PORT to serve on (default: the config's, else 127.0.0.1:8080); anything but loopback "
                        "needs HTTPS and a user (docs/security.md, board access)")
    p.add_argument("--insecure-listen", action="store_true", default=None,
                   help="labs only: serve a non-loopback address without HTTPS or users (warns at every start)")
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
    web = web_config(args)
    if not args.no_ingest and (args.broker is None or args.trust is None):
        return fail("board: --broker and --trust are required (or --no-ingest to serve the store only)", EXIT_USAGE)
    try:
        trust = None if args.no_ingest else keys.TrustStore.load(args.trust)
        limits = HttpLimits(max_connections=max(1, args.max_connections), idle_timeout_s=args.idle_timeout)
        board = Board(None if args.no_ingest else args.broker, trust, db=store_url(args),
                      listen=parse_listen(web.listen), settings=ingest_settings(args), limits=limits, web=web)
    except (keys.KeyError_, StoreError, ValueError, OSError) as exc:
        return fail(f"board: {exc}", EXIT_USAGE)
    with board:
        for warning in board.warnings:
            print(f"edge-agent: WARNING: {warning}", file=sys.stderr, flush=True)
        source = "store only" if args.no_ingest else f"broker {args.broker}, {len(trust.keys)} trusted keys"
        log.info("board serving url=%s store=%s", board.url, describe(board.store_url))
        print(f"board: {board.url} ({source}, store {describe(board.store_url)})", flush=True)
        wait_for_stop()
    return EXIT_OK


def web_config(args: argparse.Namespace) -> BoardConfig:
    """The --config file (or the defaults), with --listen and --insecure-listen over it; a bad
    file prints one line per problem (file, field, fix) and exits 2."""
    from agent.config import ConfigError
    from agent.web.config import BoardConfig, load
    from agent.web.server import parse_listen

    try:
        config = load(args.config) if args.config is not None else BoardConfig()
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    if args.listen is not None:
        try:
            parse_listen(args.listen)
        except ValueError as exc:
            raise SystemExit(fail(f"board: --listen: {exc}", EXIT_USAGE)) from None
    overrides = {"listen": args.listen, "insecure_listen": args.insecure_listen}
    return config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
