"""`edge-agent keygen`: the node's Ed25519 signing key, or a rotation to a new one."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.common import DEFAULT_CONFIG, EXIT_FAILED, EXIT_OK, config_argument, fail, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="create the node's Ed25519 signing key (and KEY.pub)")
    p.add_argument("--key", type=Path, default=None,
                   help="where to write the private key (mode 0600); with --rotate default: signing.key_file")
    p.add_argument("--rotate", action="store_true",
                   help="replace the key and leave a rotation notice, signed by the old key, for the agent "
                        "to publish (docs/security.md)")
    config_argument(p, required=False)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.trust import keys, rotation

    if args.rotate:
        config = load_config(args.config or DEFAULT_CONFIG)
        key = args.key or config.signing.key_file
        try:
            done = rotation.rotate(key, node=config.node.id, topic_prefix=config.mqtt.topic_prefix)
        except keys.KeyError_ as exc:
            return fail(str(exc), EXIT_FAILED)
        print(f"rotated {key}: key id {done.old_kid} -> {done.new_kid}; the agent publishes the notice "
              f"{done.notice} at its next start (restart it now)")
        return EXIT_OK
    if args.key is None:
        return fail("keygen needs --key PATH (or --rotate with a config)")
    try:
        _, kid = keys.generate(args.key)
    except keys.KeyError_ as exc:
        return fail(str(exc), EXIT_FAILED)
    print(f"wrote {args.key} (private, mode 0600) and {args.key}.pub; key id {kid}\n"
          f"consumers trust it with: edge-agent trust add NODE-ID {args.key}.pub --trust DIR")
    return EXIT_OK
