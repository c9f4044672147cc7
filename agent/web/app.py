"""The board's web side as an ASGI app (FastAPI): the page, the JSON API, live updates over
Server-Sent Events and the OpenAPI schema.

    GET  /                   the live page (static/index.html; no CDN, no inline data)
    GET  /api/fleet          every fleet node (agent.web.api.Fleet)
    GET  /api/nodes/{node}   one node's drill-down (agent.web.api.NodeDetail)
    GET  /api/events         text/event-stream: `snapshot` (the whole fleet) on connect, then
                             `delta` (the header and the rows that changed) as they change
    GET  /openapi.json       the API's schema
    GET  /report             the weekly review (agent.web.report): ?since=7d, ?format=html|md|json
    GET  /api/report         the review as JSON (agent.web.api.Review); ?since=7d
    GET  /assets             the asset register page; /assets.csv and /api/assets its exports
    GET  /metrics            Prometheus text format (agent.web.metrics)
HEAD is answered wherever GET is. `create_app(view)` is all a process needs; middleware
(authentication, headers) wraps the app it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from agent import __version__
from agent.core.settings import parse_duration
from agent.fleet.store import StoreError
from agent.web import api, assets, metrics, report
from agent.web.view import FleetView, asset_rows, review

log = logging.getLogger(__name__)

STATIC = resources.files("agent.web").joinpath("static")
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"), "/board.js": ("board.js", "text/javascript; charset=utf-8"),
          "/board.css": ("board.css", "text/css; charset=utf-8"),
          "/report.css": ("report.css", "text/css; charset=utf-8")}  # no inline script or style: a CSP can forbid it
REFRESH_S = 1.0
REVIEW_DEFAULT = "7d"  # the weekly meeting's window
REVIEW_MAX_S = 366 * 86400.0  # how often the web reads the store for changes
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies and idle timers from closing the stream
RECHECK_S = 15.0  # a live page's login (or token) is checked again this often: a logout or removal ends it
SUBSCRIBER_QUEUE = 16  # updates a slow page may fall behind before it gets a fresh snapshot
NO_STORE = {"Cache-Control": "no-store"}
STORE_UNAVAILABLE = "the fleet store is unavailable; see the board's log"  # 503, the API's and the access check's


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode(), status,
                    media_type="application/json", headers=NO_STORE)


class Updates:
    """Fans the view's changes out to every connected page; refreshes the view every REFRESH_S."""

    def __init__(self, view: FleetView, refresh_s: float = REFRESH_S) -> None:
        self.view, self.refresh_s = view, refresh_s
        self.subscribers: set[asyncio.Queue[str | None]] = set()
        self.failing = False

    async def run(self) -> None:
        while True:
            try:
                changed = await run_in_threadpool(self.view.refresh)
                if self.failing:
                    log.info("fleet store readable again")
                self.failing = False
            except StoreError as exc:
                if not self.failing:
                    log.error("web cannot read the fleet store error=%s", exc)
                self.failing, changed = True, set()
            except Exception:  # noqa: BLE001 - a bug costs one refresh, never the live page
                log.exception("fleet view refresh failed")
                self.failing, changed = True, set()
            if self.subscribers and not self.failing:  # every refresh: the header (time, broker) moves on too
                delta = await run_in_threadpool(self.view.delta, changed)
                self.publish("event: delta\ndata: " + json.dumps(delta, separators=(",", ":"), ensure_ascii=False)
                             + "\n\n")
            await asyncio.sleep(self.refresh_s)

    def publish(self, event: str) -> None:
        for subscriber in list(self.subscribers):
            if subscriber.full():  # too slow: drop what it missed, send it the whole fleet again
                while not subscriber.empty():
                    subscriber.get_nowait()
                subscriber.put_nowait(None)
            else:
                subscriber.put_nowait(event)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.subscribers.add(queue)
        # Set by the access middleware: false once the login or token that opened the stream is gone.
        still_allowed = request.scope.get("state", {}).get("still_allowed")
        try:
            yield "retry: 2000\n" + await self._snapshot_event()
            checked = time.monotonic()
            while not await request.is_disconnected():
                if still_allowed is not None and time.monotonic() - checked >= RECHECK_S:
                    try:
                        allowed = await run_in_threadpool(still_allowed)
                    except StoreError as exc:  # cannot tell: end it; the page reconnects and is told (503)
                        log.error("fleet store unavailable path=%s error=%s", request.url.path, exc)
                        allowed = False
                    if not allowed:
                        return  # the page reconnects, is refused and goes to the login
                    checked = time.monotonic()
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield await self._snapshot_event() if event is None else event
        finally:
            self.subscribers.discard(queue)

    async def _snapshot_event(self) -> str:
        data = await run_in_threadpool(self.view.snapshot_json)
        return "event: snapshot\ndata: " + data.decode() + "\n\n"


def review_window(view: FleetView, since: str) -> tuple[int, int]:
    """(start, now) of a review window given as a duration ("7d", checked by SINCE's pattern), at most a year."""
    seconds = min(parse_duration(since), REVIEW_MAX_S)
    now = view.now_ms()
    return now - int(seconds * 1000), now


def _asset(content: bytes, media_type: str):
    async def asset() -> Response:
        return Response(content, media_type=media_type, headers=NO_STORE)

    return asset


def create_app(view: FleetView, *, refresh_s: float = REFRESH_S) -> FastAPI:
    updates = Updates(view, refresh_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(updates.run(), name="board-updates")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(title="Edge readiness board", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json",
                  description="Every verified node's readiness (security and operations lenses), what failed "
                              "verification, and loss between agents and board; read from the fleet store.")
    app.state.updates = updates

    for path, (name, media_type) in ASSETS.items():
        app.add_api_route(path, _asset(STATIC.joinpath(name).read_bytes(), media_type), methods=["GET", "HEAD"],
                          include_in_schema=False)

    @app.get("/api/fleet", response_model=api.Fleet, responses={503: {"model": api.Problem}},
             summary="every fleet node, worst first")
    async def fleet() -> Response:
        if view.version == 0:  # not read yet (just started): read now rather than answer empty
            await run_in_threadpool(view.refresh)
        return Response(await run_in_threadpool(view.snapshot_json), media_type="application/json",
                        headers=NO_STORE)

    @app.get("/api/nodes/{node}", response_model=api.NodeDetail,
             responses={404: {"model": api.Problem}, 503: {"model": api.Problem}},
             summary="one node: devices, host health, patches, posture, rejections, outages")
    async def node(node: str) -> Response:
        detail = await run_in_threadpool(view.detail, node)
        if detail is None:
            return _json({"error": "no such node"}, 404)
        return _json(detail)

    # HEAD wherever GET: the same answer without its body (left out of the schema: one operation per path).
    app.add_api_route("/api/fleet", fleet, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/api/nodes/{node}", node, methods=["HEAD"], include_in_schema=False)

    @app.get("/api/events", summary="live updates (text/event-stream): a snapshot, then deltas",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "`event: snapshot` (a Fleet) once, then `event: delta` (a Fleet "
                                             "with only the changed nodes) as the store changes"}})
    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(updates.stream(request), media_type="text/event-stream",
                                 headers={**NO_STORE, "X-Accel-Buffering": "no"})

    _review_routes(app, view)
    _register_routes(app, view)
    registry = metrics.registry_for(view)

    async def prometheus() -> Response:
        return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST,
                        headers=NO_STORE)

    app.add_api_route("/metrics", prometheus, methods=["GET", "HEAD"], include_in_schema=False)

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, exc: StoreError) -> Response:
        log.error("fleet store unavailable path=%s error=%s", request.url.path, exc)
        return _json({"error": STORE_UNAVAILABLE}, 503)

    return app


SINCE = Query(REVIEW_DEFAULT, pattern=r"^\d+(\.\d+)?(ms|s|m|h|d)?$",
              description="the window, back from now: 7d, 30d, 12h (at most a year)")
REVIEW_TYPES = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8",
                "json": "application/json"}


def _review_routes(app: FastAPI, view: FleetView) -> None:
    async def document(since: str) -> dict[str, Any]:
        return await run_in_threadpool(review, view.db, *review_window(view, since))

    @app.get("/api/report", response_model=api.Review,
             summary="the joint review of a window: both lenses, breaches, plans, decisions")
    async def review_json(since: str = SINCE) -> Response:
        return _json(await document(since))

    async def review_page(since: str = SINCE, format: str = Query("html", pattern="^(html|md|json)$")) -> Response:
        text = report.render(await document(since), format, standalone=False)
        return Response(text.encode(), media_type=REVIEW_TYPES[format], headers=NO_STORE)

    app.add_api_route("/api/report", review_json, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/report", review_page, methods=["GET", "HEAD"], include_in_schema=False)


def _register_routes(app: FastAPI, view: FleetView) -> None:
    @app.get("/api/assets", response_model=api.Assets, summary="the asset register: every node and Modbus device")
    async def assets_json() -> Response:
        return _json({"assets": await run_in_threadpool(asset_rows, view.db)})

    async def assets_csv() -> Response:
        rows = await run_in_threadpool(asset_rows, view.db)
        return Response(assets.to_csv(rows).encode(), media_type="text/csv; charset=utf-8",
                        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="assets.csv"'})

    async def assets_page() -> Response:
        rows = await run_in_threadpool(asset_rows, view.db)
        return Response(assets.page(rows).encode(), media_type="text/html; charset=utf-8", headers=NO_STORE)

    app.add_api_route("/api/assets", assets_json, methods=["HEAD"], include_in_schema=False)
    app.add_api_route("/assets.csv", assets_csv, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/assets", assets_page, methods=["GET", "HEAD"], include_in_schema=False)
