"""`edge-agent`: the agent's command line. Each handler imports its work lazily, so a quick
command (check-config, keygen) never pays for pymodbus or paho."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from agent import __version__

DEFAULT_CONFIG = Path("/etc/edge-agent/agent.toml")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _load_config(path: Path):
    """The validated config, or print its problems (one per line) and exit 2."""
    from agent.config import ConfigError, load

    try:
        return load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_run(args: argparse.Namespace) -> int:
    from agent import daemon, logsetup
    from agent.trust.keys import KeyError_

    config = _load_config(args.config)
    logsetup.setup(args.log_level)
    try:
        return daemon.run(config, config_path=args.config)
    except KeyError_ as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    print(f"{args.config}: valid (node {config.node.id}, {len(config.modbus.devices)} Modbus devices)")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from agent.trust import keys, rotation

    if args.rotate:
        config = _load_config(args.config or DEFAULT_CONFIG)
        key = args.key or config.signing.key_file
        try:
            done = rotation.rotate(key, node=config.node.id, topic_prefix=config.mqtt.topic_prefix)
        except keys.KeyError_ as exc:
            print(f"edge-agent: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"rotated {key}: key id {done.old_kid} -> {done.new_kid}; the agent publishes the notice "
              f"{done.notice} at its next start (restart it now)")
        return EXIT_OK
    if args.key is None:
        print("edge-agent: keygen needs --key PATH (or --rotate with a config)", file=sys.stderr)
        return EXIT_USAGE
    try:
        _, kid = keys.generate(args.key)
    except keys.KeyError_ as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.key} (private, mode 0600) and {args.key}.pub; key id {kid}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from agent.consumer import Subscription
    from agent.trust.envelope import DUPLICATE
    from agent.trust.keys import KeyError_, TrustStore
    from agent.trust.verify import Verifier

    try:
        verifier = Verifier(TrustStore.load(args.trust))  # rotations followed in memory only
    except KeyError_ as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    deadline = time.monotonic() + args.timeout if args.timeout else None
    seen = invalid = duplicates = 0
    tls_files = (args.ca_file, args.cert_file, args.key_file)
    with Subscription(args.broker, verifier, topic_filter=f"{args.topic_prefix}/#", tls_files=tls_files) as subscription:
        if subscription.subscribed.wait(args.timeout or None):
            print(f"verify: subscribed to {args.topic_prefix}/# on {args.broker}", file=sys.stderr, flush=True)
        try:
            for received in subscription.messages(deadline):
                if received.verdict.reason == DUPLICATE:
                    duplicates += 1  # a QoS 1 redelivery: the same signed bytes again, not an attack
                    continue
                print(json.dumps(received.as_json(), sort_keys=True), flush=True)
                seen += 1
                invalid += not received.verdict.valid
                if args.count and seen >= args.count:
                    break
        except KeyboardInterrupt:
            pass
    print(f"verified {seen} messages, {invalid} invalid, {duplicates} duplicates ignored", file=sys.stderr)
    return EXIT_FAILED if invalid else EXIT_OK


def _default_config():
    """Enough config to run host, patches and posture once without a config file."""
    import socket

    from agent.config import validate

    return validate({"node": {"id": socket.gethostname()[:64] or "local"},
                     "signing": {"key_file": "/dev/null"}, "state_dir": "/nonexistent"}, "(defaults)")


def cmd_collect(args: argparse.Namespace) -> int:
    import asyncio

    from agent.collectors import registry

    config = _load_config(args.config) if args.config else _default_config()
    try:
        collector = registry.build_one(args.name, config, root=args.root)
    except registry.UnknownCollector as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    readings = asyncio.run(registry.collect_once(collector))
    for reading in readings:
        if args.json:
            print(json.dumps({"kind": reading.kind, "subject": reading.subject, "body": reading.body},
                             indent=2, sort_keys=True))
        else:
            print(f"# {reading.stream}")
            for line in _flatten(reading.body):
                print(line)
    return EXIT_OK


def _flatten(value, prefix: str = ""):
    """`dotted.path = value` lines, for reading a body in a terminal."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield f"{prefix} = {value}"


def cmd_plan(args: argparse.Namespace) -> int:
    from agent.collectors.modbus import plan_cmd

    return plan_cmd.main(_load_config(args.config).modbus, args.json)


def cmd_status(args: argparse.Namespace) -> int:
    from agent import status_cmd

    return status_cmd.main(_load_config(args.config).state_dir, args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    from agent import demo
    from agent.board import parse_listen

    try:
        board = None if args.no_board else parse_listen(args.board_listen)
    except ValueError as exc:
        print(f"edge-agent demo: --board-listen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return demo.run(duration=args.duration, broker_url=args.broker, state_dir=args.state_dir, board_listen=board)


def cmd_board(args: argparse.Namespace) -> int:
    from agent import board, logsetup
    from agent.trust.keys import KeyError_

    logsetup.setup(args.log_level)
    try:
        return board.run(args.broker, args.trust, listen=args.listen, prefix=args.topic_prefix,
                         group=args.group or None, silent_after_s=args.silent_after,
                         tls_files=(args.ca_file, args.cert_file, args.key_file))
    except (KeyError_, ValueError, OSError) as exc:
        print(f"edge-agent board: {exc}", file=sys.stderr)
        return EXIT_USAGE


def tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-file", default=None, help="CA bundle for an mqtts:// broker")
    parser.add_argument("--cert-file", default=None, help="client certificate for mutual TLS")
    parser.add_argument("--key-file", default=None, help="the client certificate's private key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Edge readiness agent: collects host health, patch posture and Modbus telemetry, "
                    "signs each message with the node's Ed25519 key and publishes it over MQTT.",
        epilog="Docs: README.md and docs/ (configuration, protocol, security, operations).")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument("-c", "--config", type=Path, default=None if not required else DEFAULT_CONFIG,
                       help=f"TOML config file (default {DEFAULT_CONFIG})" if required else "TOML config file")

    p = sub.add_parser("run", help="run the daemon in the foreground (SIGTERM/Ctrl-C stop it)")
    config_arg(p, required=True)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file; exit 0 if valid, 2 if not")
    config_arg(p, required=True)
    p.set_defaults(handler=cmd_check_config)

    p = sub.add_parser("keygen", help="create the node's Ed25519 signing key (and KEY.pub)")
    p.add_argument("--key", type=Path, default=None,
                   help="where to write the private key (mode 0600); with --rotate default: signing.key_file")
    p.add_argument("--rotate", action="store_true",
                   help="replace the key and leave a rotation notice, signed by the old key, for the agent "
                        "to publish (docs/security.md)")
    config_arg(p)
    p.set_defaults(handler=cmd_keygen)

    p = sub.add_parser("verify", help="subscribe, verify every message, print one JSON object per line",
                       description="Exit 1 if any message was invalid, 0 otherwise.")
    p.add_argument("--broker", required=True, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--trust", type=Path, required=True, help="folder of trusted public keys (*.pub)")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (default: no limit)")
    p.add_argument("--timeout", type=float, default=0, help="stop after S seconds (default: no limit)")
    p.add_argument("--topic-prefix", default="edge", help="first topic level (default edge)")
    tls_arguments(p)
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("collect", help="run one collector once and print what it would publish")
    p.add_argument("name", help="collector: host, patches, posture, or modbus/<device>")
    config_arg(p)
    p.add_argument("--json", action="store_true", help="print the message bodies as JSON")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="read another system root (e.g. a mounted disk image), default /")
    p.set_defaults(handler=cmd_collect)

    p = sub.add_parser("plan", help="print the Modbus reads the agent will send to each device",
                       description="Per device: table, function code, start address (zero-based), count and "
                                   "the points each read covers; nothing is sent.")
    config_arg(p, required=True)
    p.add_argument("--json", action="store_true", help="a JSON list of devices, each with its reads")
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("status", help="spool depth, drops, last publish and collectors, from the state dir",
                       description="Reads the state directory only (no broker needed). Exit 1 if it holds nothing.")
    config_arg(p, required=True)
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("demo", help="simulated plant + broker + agent + live verified view")
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--broker", default=None, help="use this broker URL instead of starting one")
    p.add_argument("--state-dir", type=Path, default=None, help="keep keys, config and logs here")
    p.add_argument("--board-listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where the fleet board's web page listens (default: a free local port, printed)")
    p.add_argument("--no-board", action="store_true", help="terminal view only, no web board")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("board", help="fleet readiness board: verified live web page and JSON API",
                       description="Subscribes with a shared subscription ($share/GROUP/PREFIX/#) plus plain "
                                   "subscriptions to the retained kinds, verifies every message and serves "
                                   "the page at / and the JSON API at /api/fleet and /api/nodes/<id>.")
    p.add_argument("--broker", required=True, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--trust", type=Path, required=True, help="folder of trusted public keys (*.pub)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on (default 127.0.0.1:8080)")
    p.add_argument("--topic-prefix", default="edge", help="first topic level (default edge)")
    p.add_argument("--group", default="board", help="shared subscription group; '' subscribes plainly")
    p.add_argument("--silent-after", type=float, default=120.0, help="seconds of silence before a node shows offline")
    tls_arguments(p)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(handler=cmd_board)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
