"""The board's HTTP side on the standard library: the static page and the JSON API.

    GET /                  the live page (polls the API every two seconds)
    GET /api/fleet         every node: verdict, both lenses, reasons, timeline, unverified marks
    GET /api/nodes/<id>    one node with its devices, host health, patches and posture
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

PAGE = resources.files("agent.web").joinpath("static/index.html")


def make_server(address: tuple[str, int], fleet: Callable[[], dict[str, Any]],
                node: Callable[[str], dict[str, Any] | None]) -> ThreadingHTTPServer:
    page = PAGE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        server_version = "edge-board"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", page)
            elif path == "/api/fleet":
                self._json(fleet())
            elif path.startswith("/api/nodes/"):
                detail = node(unquote(path.removeprefix("/api/nodes/")))
                if detail is None:
                    self._send(404, "application/json", b'{"error": "no such node"}')
                else:
                    self._json(detail)
            else:
                self._send(404, "text/plain", b"not found")

        def _json(self, data: dict[str, Any]) -> None:
            self._send(200, "application/json", json.dumps(data, default=str).encode())

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s", format % args)

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    return server


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)
