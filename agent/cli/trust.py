"""`edge-agent trust`: set up and inspect a consumers' trust store folder (docs/protocol.md)."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from agent.cli.common import EXIT_OK, EXIT_USAGE, fail


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trust", help="trust store: add a node's key, list keys, revoke a key",
                       description="A trust store is a folder: <node>.pub (and <node>/<kid>.pub) are keys that "
                                   "may speak for <node>; 'revoked' lists refused key ids. `verify` and `board` "
                                   "read it.")
    commands = p.add_subparsers(dest="trust_command", required=True, metavar="ACTION")
    add = commands.add_parser("add", help="trust KEYFILE (a node's node.key.pub) for NODE",
                              description="Files the key as DIR/NODE.pub, or as DIR/NODE/<kid>.pub when NODE "
                                          "already has another key. The file name binds the key to the node id.")
    add.add_argument("node", metavar="NODE", help="the node id the key speaks for (the node's node.id)")
    add.add_argument("key_file", type=Path, metavar="KEYFILE", help="the node's public key (PEM), e.g. node.key.pub")
    listing = commands.add_parser("list", help="every key, the node it speaks for, and whether it is revoked")
    listing.add_argument("--json", action="store_true", help="one JSON object per key")
    revoke = commands.add_parser("revoke", help="refuse a key id, and every key its rotation notices introduced")
    revoke.add_argument("kid", metavar="KID", help="key id (32 hex digits; `trust list` shows them)")
    revoke.add_argument("--reason", default="", help="a note kept beside the key id")
    for command in (add, listing, revoke):
        command.add_argument("--trust", type=Path, required=True, metavar="DIR", help="the trust store folder")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.trust import keys

    actions = {"add": _add, "list": _list, "revoke": _revoke}
    try:
        return actions[args.trust_command](args)
    except keys.KeyError_ as exc:
        return fail(f"trust {args.trust_command}: {exc}", EXIT_USAGE)
    except OSError as exc:
        return fail(f"trust {args.trust_command}: {exc.filename}: {exc.strerror}", EXIT_USAGE)


def _add(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter, ValidationError

    from agent.core.settings import Name
    from agent.trust import keys

    try:
        TypeAdapter(Name).validate_python(args.node)
    except ValidationError as exc:
        return fail(f"trust add: NODE: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", EXIT_USAGE)
    public = keys.load_public(args.key_file)
    kid = keys.key_id(public)
    args.trust.mkdir(parents=True, exist_ok=True)
    store = keys.TrustStore.load(args.trust)
    if kid in store.revoked:
        return fail(f"trust add: key {kid} is listed in {args.trust / keys.REVOCATION_FILE}; remove that line "
                    "first if it really is to be trusted again", EXIT_USAGE)
    if store.is_revoked(kid):
        markers = [e.path.with_suffix(keys.ANNOUNCED_BY_SUFFIX) for e in keys.key_files(args.trust) if e.kid == kid]
        return fail(f"trust add: key {kid} was introduced by the rotation notice of a revoked key; if you checked "
                    f"it out of band, delete {', '.join(map(str, markers))}", EXIT_USAGE)
    path = keys.file_key(args.trust, args.node, public)
    where = "already trusted" if path is None else f"filed as {path}"
    print(f"trust: key {kid} speaks for node {args.node} ({where})")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from agent.trust import keys

    store = keys.TrustStore.load(args.trust)
    rows = []
    for entry in keys.key_files(args.trust):
        status = "trusted"
        if entry.kid in store.revoked:
            status = "revoked"
        elif store.is_revoked(entry.kid):
            status = "revoked (announced by a revoked key)"
        rows.append({"node": entry.node, "kid": entry.kid, "file": str(entry.path),
                     "announced_by": entry.announced_by, "status": status})
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return EXIT_OK
    for row in rows:
        via = f"  announced by {row['announced_by']}" if row["announced_by"] else ""
        print(f"{row['node']:<24} {row['kid']}  {row['status']:<8} {row['file']}{via}")
        if row["node"].endswith(".key"):  # keygen's node.key.pub copied in as it was
            print(f"  note: this key may speak only for a node called {row['node']!r}; file it under the node's "
                  f"id with `edge-agent trust add NODE {row['file']} --trust {args.trust}`")
    listed = {row["kid"] for row in rows}
    for kid in sorted(store.revoked - listed):
        print(f"{'-':<24} {kid}  revoked  (no key file)")
    if not rows:
        print(f"trust: no keys in {args.trust}; add one with `edge-agent trust add NODE KEYFILE --trust {args.trust}`")
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    from agent.trust import keys

    store = keys.TrustStore.load(args.trust)
    note = " ".join(filter(None, [f"revoked {datetime.date.today().isoformat()}", args.reason]))
    added = keys.revoke(args.trust, args.kid, note)
    nodes = sorted(store.keys[args.kid].nodes or []) if args.kid in store.keys else []
    print(f"trust: key {args.kid} {'revoked' if added else 'was already revoked'}"
          + (f" (it spoke for {', '.join(nodes)})" if nodes else " (no key file for it here)"))
    for kid in store.announced_from(args.kid):
        print(f"trust: also refused: key {kid}, introduced by its rotation notices "
              f"(node {', '.join(sorted(store.keys[kid].nodes or []))})")
    return EXIT_OK
