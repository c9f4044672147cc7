"""The board behind a real nginx that terminates TLS, configured by the shipped example
(config/nginx-board.conf, with this test's ports, certificate and paths put in): the board
believes nginx's X-Forwarded-For/-Proto because board.toml names it, so the cookie is Secure, HSTS
is sent and the audit trail holds the client's own address, not nginx's, even when the client
forges the header; the live stream passes unbuffered."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from board_access import PASSWORD, Client, make_pki

from agent.fleet.store import open_store
from agent.web.auth import audit, users
from agent.web.board import Board
from agent.web.config import BoardConfig
from simulators.localnet import free_port, wait_for_port

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "nginx-board.conf"
CLIENT = "127.0.0.3"  # the browser's address; nginx connects to the board from 127.0.0.1


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        pytest.fail("nginx is not installed: `apt-get install -y nginx-light` (scripts/test.sh installs it)")
    return found


def nginx_config(folder: Path, pki, board_port: int, tls_port: int, http_port: int) -> Path:
    servers = EXAMPLE.read_text()
    for old, new in (("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;"),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("/etc/nginx/tls/board.crt", str(pki.cert)), ("/etc/nginx/tls/board.key", str(pki.key)),
                     ("/var/log/nginx/board.access.log", str(folder / "access.log")),
                     ("http://127.0.0.1:8080", f"http://127.0.0.1:{board_port}")):
        assert old in servers, f"config/nginx-board.conf no longer has {old!r}: update this test"
        servers = servers.replace(old, new)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"{kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                          "scgi"))
    path = folder / "nginx.conf"
    path.write_text(f"{user}worker_processes 1;\nerror_log {folder / 'error.log'};\npid {folder / 'nginx.pid'};\n"
                    f"events {{}}\nhttp {{\n{temp}{servers}\n}}\n")
    return path


@pytest.fixture
def proxied(tmp_path: Path):
    pki = make_pki(tmp_path / "pki")
    url = str(tmp_path / "fleet.sqlite")
    db = open_store(url)
    users.add(db, "alice", PASSWORD, "admin", 0)
    db.close()
    web = BoardConfig.model_validate({"proxy": {"trusted": ["127.0.0.1"]}})
    board = Board(None, None, db=url, listen=("127.0.0.1", 0), web=web).start()
    tls_port, http_port = free_port(), free_port()
    conf = nginx_config(tmp_path, pki, board.http.socket.getsockname()[1], tls_port, http_port)
    checked = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen([nginx_binary(), "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(tls_port)
        yield board, Client(tls_port, source=CLIENT, context=ssl.create_default_context(cafile=str(pki.ca)))
    finally:
        nginx.terminate()
        nginx.wait(15)
        board.stop()


def test_behind_nginx_the_cookie_is_secure_and_the_audit_has_the_clients_address(proxied) -> None:
    board, browser = proxied
    browser.extra = {"X-Forwarded-For": "203.0.113.5"}  # forged by the client: nginx replaces it
    reply = browser.login("alice")
    assert reply.status == 303 and "Secure" in reply.header("set-cookie")
    assert reply.header("strict-transport-security") and reply.header("content-security-policy")
    entry = audit.recent(board.db)[0]
    assert (entry.event, entry.addr) == ("login_ok", CLIENT)
    stream = browser.call("GET", "/api/events", stream=True)
    assert stream.status == 200 and stream.header("content-type").startswith("text/event-stream")
    browser.cookie = None
    assert browser.call("GET", "/api/fleet").status == 401


def test_without_the_proxy_named_the_board_believes_none_of_its_headers(tmp_path: Path, proxied) -> None:
    board, browser = proxied
    board.app.state.access.trusted = ()  # as if board.toml named no proxy
    reply = browser.login("alice")
    assert reply.status == 403  # the browser's Origin is https://..., the board sees plain http: not its own
    reply = browser.call("POST", "/login", form={"username": "alice", "password": PASSWORD},
                         headers={"Origin": f"http://127.0.0.1:{browser.port}"})
    assert reply.status == 303 and "Secure" not in reply.header("set-cookie")
    assert audit.recent(board.db)[0].addr == "127.0.0.1"  # nginx's address: the header was ignored
