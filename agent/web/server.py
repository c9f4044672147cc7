"""Serving the board's ASGI app with uvicorn, bounded: a connection limit (requests beyond it
get 503), an idle timeout that also applies before the first request (uvicorn's own starts only
after a response), a listen backlog, and no thread per connection.

`WebServer` binds its socket when it is made (a bad address fails at once, port 0 is known at
once) and serves from its own thread and event loop, so the board can run beside ingest; with
`TlsFiles` it serves HTTPS (the files are loaded once at start, so a wrong one fails there).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 256  # open connections (SSE pages included) before requests get 503
    idle_timeout_s: float = 5.0  # a connection that sends no complete request head this long is closed
    backlog: int = 128  # connections the kernel queues before the server accepts them
    shutdown_s: float = 3.0  # open streams get this long to end on stop


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol; a connection must send a whole request head within the idle
    timeout of opening or of its last response, or it is closed (slow or idle clients)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def _expire(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # no request in flight: nothing owed to it
            self.timeout_keep_alive_handler()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def bind(address: tuple[str, int], backlog: int) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and accepted sockets inherit it. With Nagle on, every request after the first
    # on a kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class TlsFiles:
    """HTTPS: the certificate chain and key (PEM); with `client_ca`, browsers must show a certificate it signed."""
    cert: Path
    key: Path
    client_ca: Path | None = None


def check_tls(tls: TlsFiles) -> None:
    """Load the files once now, so a wrong one fails at start with its name (ValueError), not at first use."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls.cert_file: cannot load {tls.cert} with key {tls.key}: {_reason(exc)}") from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"tls.client_ca_file: cannot load {tls.client_ca}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


class WebServer:
    def __init__(self, app: Any, address: tuple[str, int], limits: HttpLimits = HttpLimits(),
                 tls: TlsFiles | None = None) -> None:
        if tls is not None:
            check_tls(tls)
        self.socket = bind(address, limits.backlog)
        self.tls = tls
        https: dict[str, Any] = {} if tls is None else {
            "ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key),
            "ssl_ca_certs": str(tls.client_ca) if tls.client_ca else None,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if tls.client_ca else ssl.CERT_NONE}
        # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1; the board's own
        # middleware believes it from the configured proxies only (agent.web.auth.proxy).
        config = uvicorn.Config(app, http=BoundedH11Protocol, ws="none", lifespan="on", log_level="warning",
                                access_log=False, limit_concurrency=limits.max_connections,
                                timeout_keep_alive=int(max(1, limits.idle_timeout_s)), backlog=limits.backlog,
                                timeout_graceful_shutdown=int(max(1, limits.shutdown_s)), proxy_headers=False,
                                server_header=False, **https)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.socket])),
                                        name="board-web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()
