"""`edge-agent board`: the fleet readiness board, a verified live web page and JSON API."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from agent.cli.common import EXIT_OK, EXIT_USAGE, clock_arguments, fail, log_level_argument, tls_arguments
from agent.fleet.state import SILENT_AFTER_S

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("board", help="fleet readiness board: verified live web page and JSON API",
                       description="Subscribes with a shared subscription ($share/GROUP/PREFIX/#) plus plain "
                                   "subscriptions to the retained kinds, verifies every message and serves "
                                   "the page at / and the JSON API at /api/fleet and /api/nodes/<id>.")
    p.add_argument("--broker", required=True, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--trust", type=Path, required=True, help="trust store folder (docs/protocol.md)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on (default 127.0.0.1:8080)")
    p.add_argument("--topic-prefix", default="edge", help="first topic level (default edge)")
    p.add_argument("--group", default="board", help="shared subscription group; '' subscribes plainly")
    p.add_argument("--silent-after", type=float, default=SILENT_AFTER_S,
                   help=f"seconds of silence before a node shows offline (default {SILENT_AFTER_S:g})")
    clock_arguments(p)
    tls_arguments(p)
    log_level_argument(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.cli import logs
    from agent.trust import keys
    from agent.web.board import Board
    from agent.web.server import parse_listen

    logs.setup(args.log_level)
    broker = args.broker
    try:
        trust = keys.TrustStore.load(args.trust)
        board = Board(broker, trust, listen=parse_listen(args.listen), prefix=args.topic_prefix,
                      group=args.group or None, silent_after_s=args.silent_after, max_skew_s=args.max_skew,
                      max_age_s=args.max_age,
                      tls_files=(args.ca_file, args.cert_file, args.key_file))
    except (keys.KeyError_, ValueError, OSError) as exc:
        return fail(f"board: {exc}", EXIT_USAGE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with board:
        log.info("board serving url=%s broker=%s trusted_keys=%d", board.url, broker, len(trust.keys))
        print(f"board: {board.url} (broker {broker}, {len(trust.keys)} trusted keys)", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return EXIT_OK
