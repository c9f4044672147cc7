"""The board's own HTTPS (uvicorn with the config's certificate and key) checked by a client
that verifies the chain to a test CA and the name 127.0.0.1; mutual TLS with a client CA; a
wrong certificate file stops the start with the field named, exit 2; the config file's TLS
paths are taken relative to the file."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from board_access import PASSWORD, Client, make_pki

from agent.fleet.store import open_store
from agent.web.auth import users
from agent.web.board import Board
from agent.web.config import BoardConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = str(tmp_path / "fleet.sqlite")
    db = open_store(url)
    users.add(db, "alice", PASSWORD, "admin", 0)
    db.close()
    return url


def verifying(pki, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))  # chain to the test CA and hostname checked
    if client_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def test_https_with_a_certificate_chain_to_the_test_ca(tmp_path: Path, store: str) -> None:
    pki = make_pki(tmp_path / "pki")
    web = BoardConfig.model_validate({"tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)}})
    with Board(None, None, db=store, listen=("127.0.0.1", 0), web=web) as board:
        port = board.http.socket.getsockname()[1]
        browser = Client(port, context=verifying(pki))
        reply = browser.login("alice")
        assert reply.status == 303 and "Secure" in reply.header("set-cookie")
        assert reply.header("strict-transport-security") == "max-age=31536000"
        assert browser.call("GET", "/api/fleet").status == 200
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust the test CA
            Client(port, context=ssl.create_default_context()).call("GET", "/login")
        with pytest.raises(ConnectionError):  # no plain HTTP on the HTTPS port: the handshake fails, it hangs up
            Client(port).call("GET", "/login")


def test_mutual_tls_lets_only_holders_of_a_client_certificate_reach_the_login(tmp_path: Path, store: str) -> None:
    pki = make_pki(tmp_path / "pki")
    web = BoardConfig.model_validate({"tls": {"cert_file": str(pki.cert), "key_file": str(pki.key),
                                              "client_ca_file": str(pki.ca)}})
    with Board(None, None, db=store, listen=("127.0.0.1", 0), web=web) as board:
        port = board.http.socket.getsockname()[1]
        assert Client(port, context=verifying(pki, client_cert=True)).call("GET", "/login").status == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            Client(port, context=verifying(pki)).call("GET", "/login")


def test_a_wrong_certificate_file_stops_the_start_naming_the_field(tmp_path: Path, store: str) -> None:
    pki = make_pki(tmp_path / "pki")
    config = tmp_path / "board.toml"
    config.write_text(f'[tls]\ncert_file = "pki/ca.crt"\nkey_file = "{pki.key}"\n')  # the CA's cert, not the board's
    done = subprocess.run([sys.executable, "-m", "agent.cli", "board", "--no-ingest", "--db", store, "--listen",
                           "127.0.0.1:0", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"edge-agent: board: tls.cert_file: cannot load {tmp_path / 'pki/ca.crt'} with key {pki.key}" in done.stderr
