"""`edge-agent ingest`: MQTT shared subscription -> verify -> the fleet store, without the web
page; run any number beside one PostgreSQL store and one or more `edge-agent board --no-ingest`.
The options shared with `edge-agent board` live here."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.common import (EXIT_OK, EXIT_USAGE, bridge_arguments, clock_arguments, fail, log_level_argument,
                              tls_arguments)
from agent.fleet.defaults import DAY_MS, HISTORY_MS, RETENTION_MS, SILENT_AFTER_S

if TYPE_CHECKING:
    from agent.fleet.ingest import IngestSettings

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/edge-board")


def duration(text: str) -> float:
    from agent.core.settings import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, metavar="URL",
                   help="the fleet store: postgresql://USER@HOST/DB, or a SQLite file "
                        f"(default STATE_DIR/fleet.sqlite)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help=f"where the default SQLite store lives (default {DEFAULT_STATE_DIR})")


def ingest_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--broker", required=required, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--trust", type=Path, required=required, help="trust store folder (docs/protocol.md)")
    p.add_argument("--topic-prefix", default="edge", help="first topic level (default edge)")
    p.add_argument("--group", default="board", help="shared subscription group; '' subscribes plainly")
    p.add_argument("--silent-after", type=duration, default=SILENT_AFTER_S,
                   help=f"silence before a node shows offline (default {SILENT_AFTER_S:g} s)")
    p.add_argument("--tick", type=duration, default=5.0, help="how often the whole fleet is re-judged (default 5s)")
    p.add_argument("--retention", type=duration, default=RETENTION_MS / 1000,
                   help=f"how long verified messages are kept (default {RETENTION_MS // DAY_MS}d; never less than "
                        "the verifier's max age)")
    p.add_argument("--history", type=duration, default=HISTORY_MS / 1000,
                   help=f"how long verdict, outage, patch and posture history is kept (default {HISTORY_MS // DAY_MS}d)")
    p.add_argument("--client-id", default="", help="MQTT client id (default: one the broker assigns)")
    bridge_arguments(p)
    clock_arguments(p)
    tls_arguments(p)


def store_url(args: argparse.Namespace) -> str:
    from agent.fleet.store import default_url

    return args.db or default_url(args.state_dir)


def ingest_settings(args: argparse.Namespace) -> IngestSettings:
    from agent.fleet.ingest import IngestSettings
    from agent.fleet.store.upkeep import Retention
    from agent.trust.bridge import Bridges

    return IngestSettings(prefix=args.topic_prefix, group=args.group or None,
                          tls_files=(args.ca_file, args.cert_file, args.key_file), client_id=args.client_id,
                          max_skew_ms=int(args.max_skew * 1000), max_age_ms=int(args.max_age * 1000),
                          bridges=Bridges(args.bridge_prefixes),
                          silent_after_ms=int(args.silent_after * 1000), tick_s=max(0.5, args.tick),
                          retention=Retention(retention_ms=int(args.retention * 1000),
                                              history_ms=int(args.history * 1000)))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="receive, verify and store the fleet's messages (no web page)",
                       description="Subscribes with a shared subscription ($share/GROUP/PREFIX/#) plus plain "
                                   "subscriptions to the retained kinds, verifies every message, checks its body "
                                   "and stores it in the fleet store. Any number of ingest processes may share one "
                                   "group and one PostgreSQL store; `edge-agent board --no-ingest` serves the page.")
    ingest_arguments(p)
    store_arguments(p)
    log_level_argument(p)
    p.set_defaults(handler=handle)


def wait_for_stop() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass


def handle(args: argparse.Namespace) -> int:
    from agent.cli import logs
    from agent.fleet.ingest import Ingest
    from agent.fleet.store import StoreError, describe, open_store
    from agent.trust import keys

    logs.setup(args.log_level)
    try:
        trust = keys.TrustStore.load(args.trust)
        db = open_store(store_url(args))
    except (keys.KeyError_, StoreError, ValueError, OSError) as exc:
        return fail(f"ingest: {exc}", EXIT_USAGE)
    try:
        ingest = Ingest(args.broker, trust, db, ingest_settings(args)).start()
    except ValueError as exc:
        db.close()
        return fail(f"ingest: {exc}", EXIT_USAGE)
    print(f"ingest: {args.broker} -> {describe(store_url(args))} ({len(trust.keys)} trusted keys, "
          f"instance {ingest.instance})", flush=True)
    try:
        wait_for_stop()
    finally:
        ingest.stop()
        db.close()
    return EXIT_OK
