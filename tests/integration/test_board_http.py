"""The board's HTTP side on a real socket: its published OpenAPI schema holds for every answer
(schemathesis), HEAD works wherever GET does, idle and slow clients are cut off, the connection
limit holds, and two hundred idle clients cost no thread."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
import schemathesis
from fleet_harness import Clock, Fleet, make_nodes
from hypothesis import HealthCheck, given, settings
from waiting import wait_until

from agent.web.board import Board
from agent.web.server import HttpLimits

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A web-only board over a store holding three nodes, a forgery and an outage."""
    url = str(tmp_path_factory.mktemp("store") / "fleet.sqlite")
    clock = Clock(time.time())
    trust, nodes = make_nodes(clock, "panel-1", "panel-2", "panel-3")
    fleet = Fleet(url, trust, clock)
    nodes["panel-2"].devices["plc-line2"].online = False
    for node in nodes.values():
        fleet.feed([node.status("online"), *node.cycle()])
    fleet.feed([(nodes["panel-1"].sent[-1][0], nodes["panel-1"].sent[-1][1].replace(b'"ready"', b'"down"', 1), False)])
    fleet.close()
    board = Board(None, None, db=url, listen=("127.0.0.1", 0),
                  limits=HttpLimits(max_connections=20, idle_timeout_s=1.0)).start()
    yield board
    board.stop()


def connect(board: Board) -> http.client.HTTPConnection:
    host, port = board.http.socket.getsockname()[:2]
    return http.client.HTTPConnection(host, port, timeout=10)


def request(board: Board, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = connect(board)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path, distinct, allowed", [("/api/fleet", 1, {200}), ("/api/nodes/{node}", 10, {200, 404}),
                                                     ("/api/assets", 1, {200}), ("/api/report", 5, {200, 422})])
def test_every_answer_holds_to_the_published_schema(served, path: str, distinct: int, allowed: set[int]) -> None:
    api = schemathesis.openapi.from_url(f"{served.url}openapi.json")
    operation = api.find_operation_by_path("GET", path)
    calls = []

    @given(operation.as_strategy())
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        calls.append(case.call_and_validate())  # status, content type, body against the schema; no 5xx

    check()
    for node in ("panel-1", "panel-2", "panel-3"):  # the fleet's own nodes too, not only made-up names
        if "{node}" in path:
            calls.append(operation.Case(path_parameters={"node": node}).call_and_validate())
    if path == "/api/report":  # a window schemathesis may not think of
        calls.append(operation.Case(query={"since": "30d"}).call_and_validate())
    assert {response.status_code for response in calls} <= allowed and len(calls) >= distinct


def test_the_schema_is_published_and_names_every_endpoint(served) -> None:
    status, headers, body = request(served, "GET", "/openapi.json")
    paths = json.loads(body)["paths"]
    assert status == 200 and {"/api/fleet", "/api/nodes/{node}", "/api/events", "/api/report", "/api/assets"} <= set(paths)


@pytest.mark.parametrize("path", ["/", "/board.js", "/api/fleet", "/api/nodes/panel-2", "/api/nodes/nobody", "/report",
                                  "/report.css", "/api/report", "/assets", "/assets.csv", "/api/assets", "/metrics"])
def test_head_answers_as_get_does_without_a_body(served, path: str) -> None:
    got_status, got_headers, got_body = request(served, "GET", path)
    head_status, head_headers, head_body = request(served, "HEAD", path)
    assert head_status == got_status and head_body == b""
    assert head_headers["content-type"] == got_headers["content-type"]
    assert got_status == (404 if path.endswith("nobody") else 200) and got_body


def test_events_stream_a_snapshot_then_deltas(served) -> None:
    conn = connect(served)
    conn.request("GET", "/api/events")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    lines = []
    while sum(line.startswith(b"event:") for line in lines) < 2:
        lines.append(response.fp.readline())
    conn.close()
    events = [line.split(b":", 1)[1].strip() for line in lines if line.startswith(b"event:")]
    data = [json.loads(line.split(b":", 1)[1]) for line in lines if line.startswith(b"data:")]
    assert events == [b"snapshot", b"delta"]
    assert {n["node"] for n in data[0]["nodes"]} == {"panel-1", "panel-2", "panel-3"}


def test_idle_and_slow_clients_are_cut_off_and_cost_no_thread(served) -> None:
    threads = threading.active_count()
    host, port = served.http.socket.getsockname()[:2]
    idle = [socket.create_connection((host, port), timeout=10) for _ in range(200)]
    slow = socket.create_connection((host, port), timeout=10)
    slow.sendall(b"GET /api/fleet HTTP/1.1\r\nHost: x\r\n")  # and never the rest of the head
    assert threading.active_count() == threads  # asyncio: a connection is not a thread
    for sock in [*idle, slow]:
        assert sock.recv(1024) in (b"", )  # the server closes it (idle timeout 1 s), nothing sent
        sock.close()
    status, _, body = request(served, "GET", "/api/fleet")
    assert status == 200 and json.loads(body)["nodes"]


def test_requests_past_the_connection_limit_get_503_and_the_board_recovers(served) -> None:
    host, port = served.http.socket.getsockname()[:2]
    held = [socket.create_connection((host, port), timeout=10) for _ in range(20)]
    try:
        wait_until(lambda: request(served, "GET", "/api/fleet")[0] == 503, "the limit to bite", timeout=10)
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: request(served, "GET", "/api/fleet")[0] == 200, "the board to answer again", timeout=10)
