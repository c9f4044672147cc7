"""`edge-agent run`: the daemon in the foreground (systemd runs it so)."""

from __future__ import annotations

import argparse

from agent.cli.common import EXIT_USAGE, config_argument, fail, load_config, log_level_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon in the foreground (SIGTERM/Ctrl-C stop it, SIGHUP reloads)")
    config_argument(p)
    log_level_argument(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from agent.cli import logs
    from agent.daemon import service
    from agent.trust.keys import KeyError_

    config = load_config(args.config, check_files=True)
    logs.setup(args.log_level)
    try:
        return service.run(config, config_path=args.config)
    except KeyError_ as exc:
        return fail(str(exc), EXIT_USAGE)
