"""The fleet board in one process (`edge-agent board`): ingest (agent.fleet.ingest) and the web
view (agent.web.view, agent.web.app, agent.web.server) on one fleet store. Either half can run
alone: without a broker URL the board only serves what the store holds (ingest runs elsewhere,
`edge-agent ingest`). The clock is passed in so drills can run it on simulated time.
See docs/readiness.md and docs/operations.md.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.core.settings import is_loopback
from agent.fleet.ingest import Ingest, IngestSettings
from agent.fleet.store import default_url, describe, open_store
from agent.trust import keys
from agent.web.app import create_app
from agent.web.auth import exposure, secure, users
from agent.web.auth.access import Access
from agent.web.config import BoardConfig
from agent.web.server import HttpLimits, TlsFiles, WebServer
from agent.web.view import FleetView

log = logging.getLogger(__name__)


class Board:
    def __init__(self, broker_url: str | None, trust: keys.TrustStore | None, *, db: str | None = None,
                 listen: tuple[str, int] = ("127.0.0.1", 8080), settings: IngestSettings = IngestSettings(),
                 clock: Callable[[], float] = time.time, serve_http: bool = True, limits: HttpLimits = HttpLimits(),
                 refresh_s: float = 1.0, trust_dir: Path | None = None, web: BoardConfig = BoardConfig()) -> None:
        # Without a store named, a throwaway one (drills, tests): it goes when the board stops.
        self._scratch = None if db is not None else Path(tempfile.mkdtemp(prefix="edge-board-"))
        self.store_url = db if db is not None else default_url(self._scratch)
        self.db = open_store(self.store_url, pool_size=8)
        self.clock = clock
        self.ingest = None
        if broker_url is not None:
            assert trust is not None, "ingest needs a trust store"
            self.ingest = Ingest(broker_url, trust, self.db, settings, clock=clock, trust_dir=trust_dir)
        self.view = FleetView(self.db, clock=clock)
        self.http: WebServer | None = None
        self.warnings: list[str] = []
        if serve_http:
            try:
                self.http = self._web(listen, web, limits, refresh_s)
            except BaseException:
                self.db.close()
                raise

    def _web(self, listen: tuple[str, int], web: BoardConfig, limits: HttpLimits, refresh_s: float) -> WebServer:
        """The web server, refused (ValueError, one line) where it would be exposed; see agent.web.auth.exposure."""
        host, port = listen
        # Single sign-on is a way in as good as a local user: with it the board may be exposed and is never open.
        sso = web.oidc is not None
        https, people = web.tls.enabled or bool(web.proxy.trusted), users.count(self.db) + sso
        problem = exposure.listen_problem(host, port, https=https, users=people, insecure=web.insecure_listen)
        if problem is not None:
            raise ValueError(problem)
        if web.insecure_listen and (warning := exposure.insecure_warning(host, port, https=https, users=people)):
            self.warnings.append(warning)
        may_open = (is_loopback(host) or web.insecure_listen) and not sso
        if may_open and people == 0 and not web.insecure_listen:
            self.warnings.append(f"board access open address={host}:{port} (no users yet): anyone on this machine "
                                 "reads the board; `edge-agent board-user add NAME --role admin` requires a login")
        access = Access(self.db, web, may_open=may_open, clock=self.clock)
        tls = TlsFiles(web.tls.cert_file, web.tls.key_file, web.tls.client_ca_file) if web.tls.enabled else None
        self.app = secure(create_app(self.view, refresh_s=refresh_s), access)
        return WebServer(self.app, listen, limits, tls=tls)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        assert self.http is not None
        return self.http.url

    def fleet(self) -> dict[str, Any]:
        """The fleet as the API shows it, read from the store now."""
        self.view.refresh()
        return self.view.snapshot()

    def node(self, node: str) -> dict[str, Any] | None:
        self.view.refresh()
        return self.view.detail(node)

    def start(self) -> "Board":
        if self.ingest is not None:
            self.ingest.start()
        if self.http is not None:
            self.http.start()
        for warning in self.warnings:
            log.warning("%s", warning)
        log.info("board started store=%s ingest=%s web=%s", describe(self.store_url), self.ingest is not None,
                 self.http.url if self.http else "-")
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.ingest is not None:
            self.ingest.stop()
        self.db.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "Board":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
