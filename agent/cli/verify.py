"""`edge-agent verify`: subscribe, verify every message, print one JSON line each."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agent.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, bridge_arguments, clock_arguments, fail, tls_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="subscribe, verify every message, print one JSON object per line",
                       description="Exit 1 if any message was invalid, 0 otherwise. A duplicate (the same signed "
                                   "bytes again, e.g. a QoS 1 redelivery) is counted, not printed. Without --state, "
                                   "replays are caught only while this command runs.")
    p.add_argument("--broker", required=True, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--trust", type=Path, required=True,
                   help="trust store folder, set up with `edge-agent trust add` (docs/protocol.md)")
    p.add_argument("--state", type=Path, default=None, metavar="FILE",
                   help="remember per node what was accepted in FILE (JSON, created if missing), so that replays "
                        "are caught across restarts of this command")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (default: no limit)")
    p.add_argument("--timeout", type=float, default=0, help="stop after S seconds (default: no limit)")
    p.add_argument("--topic-prefix", default="edge", help="first topic level (default edge)")
    p.add_argument("--client-id", default="", metavar="ID",
                   help="MQTT client id; with one, the broker keeps this verifier's session (clean session off) "
                        "and queues for it while it or the broker restarts (default: a fresh session each run)")
    bridge_arguments(p)
    clock_arguments(p)
    tls_arguments(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.fleet.subscription import Subscription
    from agent.trust.bridge import Bridges
    from agent.trust.envelope import DUPLICATE
    from agent.trust.keys import KeyError_, TrustStore
    from agent.trust.replay import FileState, StateFileError
    from agent.trust.verify import Verifier

    if args.state is not None and not args.state.parent.is_dir():
        return fail(f"{args.state}: --state: the folder {args.state.parent} does not exist", EXIT_USAGE)
    try:
        bridges = Bridges(args.bridge_prefixes)
    except ValueError as exc:
        return fail(f"--bridge-prefix: {exc}", EXIT_USAGE)
    try:
        verifier = Verifier(TrustStore.load(args.trust), max_skew_ms=int(args.max_skew * 1000),
                            max_age_ms=int(args.max_age * 1000), bridges=bridges,
                            replay_state=FileState(args.state) if args.state else None)  # rotations: in memory only
    except (KeyError_, StateFileError) as exc:
        return fail(str(exc), EXIT_USAGE)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    seen = invalid = duplicates = 0
    tls_files = (args.ca_file, args.cert_file, args.key_file)
    filters = [f"{root}/#" for root in bridges.roots(args.topic_prefix)]
    with Subscription(args.broker, verifier, topic_filter=filters, tls_files=tls_files, client_id=args.client_id,
                      persistent=bool(args.client_id)) as subscription:
        if subscription.subscribed.wait(args.timeout or None):
            print(f"verify: subscribed to {' '.join(filters)} on {args.broker}", file=sys.stderr, flush=True)
            if subscription.refused:
                print(f"verify: the broker refused {' '.join(subscription.refused)} (its ACL)", file=sys.stderr,
                      flush=True)
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
