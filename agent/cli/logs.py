"""Logging for a service: one line per event on stderr, journald priorities when under systemd."""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities, which journald reads from a "<N>" line prefix (SyslogLevelPrefix=yes).
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{record.name}: {record.getMessage()}"


def setup(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter())  # journald adds its own timestamps
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pymodbus narrates every retry at INFO; our poller logs the events that matter.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # The board's single sign-on client logs each request to the provider at INFO: detail, not events.
    logging.getLogger("httpx2").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
