"""`edge-agent report`: the weekly review for the CISO-COO meeting, from the fleet store: one
HTML page (charts drawn as SVG, stylesheet embedded: it reads the same mailed or opened from a
share), Markdown, or JSON. The board serves the same at /report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.cli.common import EXIT_OK, EXIT_USAGE, fail
from agent.cli.ingest import duration, store_arguments, store_url

FORMATS = ("html", "md", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="the weekly review from the fleet store (HTML, Markdown or JSON)",
                       description="Both lenses over a window: verdicts, device availability against the tolerated "
                                   "downtime, security backlog, time-to-patch and SLA compliance, hardening checks "
                                   "that changed, what each node's next maintenance window will install, what "
                                   "breached, and the decisions needed.")
    store_arguments(p)
    p.add_argument("--since", type=duration, default=7 * 86400.0, metavar="DURATION",
                   help="the window, back from now (default 7d; e.g. 30d, 12h)")
    p.add_argument("--format", choices=FORMATS, default="html", help="html (default), md or json")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here instead of standard output")
    p.set_defaults(handler=handle)


def open_existing(args: argparse.Namespace):
    """The fleet store named by --db/--state-dir; a SQLite file that does not exist is an error
    (a report of an empty store made up on the spot would say nothing happened)."""
    from agent.fleet.store import StoreError, open_store

    url = store_url(args)
    if "://" not in url and not Path(url).exists():
        raise StoreError(f"{url}: no fleet store here (give --db URL, or --state-dir where the board keeps it)")
    return open_store(url)


def write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")


def handle(args: argparse.Namespace) -> int:
    from agent.fleet.store import StoreError
    from agent.web import report
    from agent.web.view import review

    if args.since <= 0:
        return fail("report: --since must be longer than zero, e.g. 7d", EXIT_USAGE)
    try:
        db = open_existing(args)
    except StoreError as exc:
        return fail(f"report: {exc}", EXIT_USAGE)
    try:
        now = int(time.time() * 1000)
        text = report.render(review(db, now - int(args.since * 1000), now), args.format, standalone=True)
        write(text, args.output)
    except StoreError as exc:
        return fail(f"report: {exc}", EXIT_USAGE)
    except OSError as exc:
        return fail(f"report: {args.output}: {exc.strerror or exc}", EXIT_USAGE)
    finally:
        db.close()
    return EXIT_OK
