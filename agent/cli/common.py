"""What every command shares: exit codes, the config option and loader, TLS and log options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import Config

DEFAULT_CONFIG = Path("/etc/edge-agent/agent.toml")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print one `edge-agent: ...` line on stderr and return `code` (for `return fail(...)`)."""
    print(f"edge-agent: {message}", file=sys.stderr)
    return code


def load_config(path: Path, *, check_files: bool = False) -> Config:
    """The validated config (with `check_files`, also the files it names), or print its
    problems (one per line) and exit 2."""
    from agent.config import ConfigError, load, load_checked

    try:
        return load_checked(path) if check_files else load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def config_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """-c/--config; `required` commands fall back to the installed config file."""
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG if required else None,
                        help=f"TOML config file (default {DEFAULT_CONFIG})" if required else "TOML config file")


def tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-file", default=None, help="CA bundle for an mqtts:// broker")
    parser.add_argument("--cert-file", default=None, help="client certificate for mutual TLS")
    parser.add_argument("--key-file", default=None, help="the client certificate's private key")


def _duration(text: str) -> float:
    from agent.core.settings import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than zero")
    return seconds


def clock_arguments(parser: argparse.ArgumentParser) -> None:
    """--max-skew and --max-age of a verifying consumer (docs/protocol.md, step 10)."""
    from agent.trust.verify import MAX_AGE_MS, MAX_SKEW_MS

    parser.add_argument("--max-skew", type=_duration, default=MAX_SKEW_MS / 1000, metavar="DURATION",
                        help=f"refuse a message stamped further ahead of this clock (default {MAX_SKEW_MS // 1000}s; "
                             "e.g. 30s, 5m)")
    parser.add_argument("--max-age", type=_duration, default=MAX_AGE_MS / 1000, metavar="DURATION",
                        help=f"refuse a message stamped longer ago, except deaths and key rotation notices "
                             f"(default {MAX_AGE_MS // 86_400_000}d; cover the agents' longest spool backlog)")


def _bridge_prefix(text: str):
    from agent.trust.bridge import BridgePrefix

    try:
        return BridgePrefix.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bridge_arguments(parser: argparse.ArgumentParser) -> None:
    """--bridge-prefix, repeatable: what remapping bridges add in front of the topics (docs/protocol.md)."""
    parser.add_argument("--bridge-prefix", dest="bridge_prefixes", type=_bridge_prefix, action="append", default=[],
                        metavar="PREFIX[=NODE,...]",
                        help="a prefix a bridge adds in front of the agents' topics, e.g. site-a/ (repeat for each "
                             "site); after '=' the only nodes allowed under it, which then arrive under it only "
                             "(site-a/=press-1,press-2 or site-a/=line-a-*); docs/protocol.md, bridge prefixes")


def log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
