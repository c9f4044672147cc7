"""`edge-agent board-user` and `edge-agent board-token`: who may use the board, kept in the fleet
store (the same --db / --state-dir as `edge-agent board`). Passwords come from a prompt or the
first line of standard input, never from the command line (it shows in `ps` and shell history);
a token is printed once, when made. Each change is an audit row and a log line."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from agent.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from agent.cli.ingest import store_arguments, store_url


def register(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("board-user", help="add, remove or list the board's users",
                           description="Users log in to the board's page with a password (Argon2id-hashed in the "
                                       "fleet store). Roles: viewer (the board, report, asset register) and admin "
                                       "(also users, tokens and the audit trail at /admin).")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user, or set a new password and role (ends their sessions)")
    add.add_argument("username")
    add.add_argument("--role", choices=["viewer", "admin"], default="viewer", help="default viewer")
    remove = actions.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("username")
    actions.add_parser("list", help="list users and roles")
    for parser in actions.choices.values():
        store_arguments(parser)
    users.set_defaults(handler=handle_user)

    keys = sub.add_parser("board-token", help="make, revoke or list API tokens for /metrics and /api",
                          description="Programs (Prometheus, scripts) send `Authorization: Bearer TOKEN`. Scopes: "
                                      "metrics (/metrics only) and read (everything a viewer sees).")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    make = key_actions.add_parser("add", help="make a token and print it (once)")
    make.add_argument("name", help="what uses it, e.g. prometheus")
    make.add_argument("--scope", choices=["metrics", "read"], required=True)
    revoke = key_actions.add_parser("remove", help="revoke a token")
    revoke.add_argument("name")
    key_actions.add_parser("list", help="list tokens (names, scopes, last use; never the tokens)")
    for parser in key_actions.choices.values():
        store_arguments(parser)
    keys.set_defaults(handler=handle_token)


def read_password(username: str) -> str:
    """From a prompt (typed twice) on a terminal, else the first line of standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {username}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def _open(args: argparse.Namespace):
    from agent.fleet.store import open_store

    return open_store(store_url(args), pool_size=1)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def handle_user(args: argparse.Namespace) -> int:
    from agent.cli import logs
    from agent.fleet.store import StoreError
    from agent.web.auth import audit, users

    logs.setup("INFO")
    now = int(time.time() * 1000)
    try:
        if args.action == "add":
            users.check_username(args.username)
            password = read_password(args.username)
            users.check_password(password)
        db = _open(args)
    except (ValueError, StoreError) as exc:
        return fail(f"board-user: {exc}", EXIT_USAGE)
    try:
        if args.action == "list":
            for user in users.all_users(db):
                print(f"{user.username}\t{user.role}")
            return EXIT_OK
        if args.action == "add":
            created = users.add(db, args.username, password, args.role, now)
            audit.record(db, "user_added" if created else "user_changed", _actor(), "local", now,
                         f"target={args.username} role={args.role}")
            print(f"board-user: {'added' if created else 'changed'} {args.username} ({args.role})")
            return EXIT_OK
        if not users.remove(db, args.username):
            return fail(f"board-user: no user {args.username}", EXIT_FAILED)
        audit.record(db, "user_removed", _actor(), "local", now, f"target={args.username}")
        print(f"board-user: removed {args.username}; their sessions have ended")
        return EXIT_OK
    except StoreError as exc:
        return fail(f"board-user: {exc}", EXIT_FAILED)
    finally:
        db.close()


def handle_token(args: argparse.Namespace) -> int:
    from agent.cli import logs
    from agent.fleet.store import StoreError
    from agent.web.auth import audit, tokens

    logs.setup("INFO")
    now = int(time.time() * 1000)
    try:
        db = _open(args)
    except StoreError as exc:
        return fail(f"board-token: {exc}", EXIT_USAGE)
    try:
        if args.action == "list":
            for token in tokens.all_tokens(db):
                used = "never" if token.last_used_ms is None else time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.last_used_ms / 1000))
                print(f"{token.name}\t{token.scope}\tlast used {used}")
            return EXIT_OK
        if args.action == "add":
            try:
                secret = tokens.add(db, args.name, args.scope, now)
            except ValueError as exc:
                return fail(f"board-token: {exc}", EXIT_USAGE)
            audit.record(db, "token_added", _actor(), "local", now, f"target={args.name} scope={args.scope}")
            print(secret)
            print(f"board-token: made {args.name} ({args.scope}); copy it now, it is not shown again", file=sys.stderr)
            return EXIT_OK
        if not tokens.remove(db, args.name):
            return fail(f"board-token: no token {args.name}", EXIT_FAILED)
        audit.record(db, "token_removed", _actor(), "local", now, f"target={args.name}")
        print(f"board-token: revoked {args.name}")
        return EXIT_OK
    except StoreError as exc:
        return fail(f"board-token: {exc}", EXIT_FAILED)
    finally:
        db.close()
