"""Single sign-on wired into the board (`edge-agent board --config board.toml` with [oidc]): it
counts as a way in (the board is never open with it, and may listen on the network with HTTPS and
no local user); a bad [oidc] section or secret file stops the start with exit 2 and lines naming
the file, the field and the fix; a sign-in ends in the board's session, which /api/me shows."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from board_access import make_pki

from agent.web.board import Board
from agent.web.config import BoardConfig
from simulators.localnet import free_port
from simulators.oidc_provider import OidcProvider, User

pytestmark = pytest.mark.integration
CLIENT, SECRET = "edge-board", "s3cret-from-the-provider"


def oidc_section(issuer: str, secret: Path, callback: str) -> dict[str, object]:
    return {"name": "Plant login", "issuer": issuer, "client_id": CLIENT, "client_secret_file": str(secret),
            "redirect_url": callback, "admin_groups": ["plant-security"], "viewer_groups": ["plant-ops"]}


def secret_file(folder: Path) -> Path:
    path = folder / "oidc-secret"
    path.write_text(SECRET)
    os.chmod(path, 0o600)
    return path


def test_with_sso_and_no_local_user_the_board_is_closed_and_a_sign_in_opens_it(tmp_path: Path) -> None:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/login/oidc/callback"
    with OidcProvider(CLIENT, SECRET, [callback], User(username="sam", groups=["plant-security"])) as provider:
        web = BoardConfig.model_validate({"oidc": oidc_section(provider.issuer, secret_file(tmp_path), callback)})
        with Board(None, None, listen=("127.0.0.1", port), web=web) as board, \
                httpx2.Client(base_url=board.url, follow_redirects=False, timeout=10) as client:
            assert board.warnings == []  # no "open board" warning: SSO is a way in
            assert client.get("/api/fleet").status_code == 401
            authorize = client.get("/login/oidc").headers["location"]
            callback_url = client.get(authorize).headers["location"]
            done = client.get(callback_url)
            assert (done.status_code, done.headers["location"]) == (303, "/")
            assert "board_session" in client.cookies and "content-security-policy" in done.headers
            assert client.get("/api/me").json() == {"user": "sam", "role": "admin", "token": None, "open": False}
            assert client.get("/admin").status_code == 200
            assert client.get("/api/fleet").status_code == 200


def test_with_sso_and_https_the_board_may_listen_on_the_network_without_a_local_user(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web = BoardConfig.model_validate({
        "tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)},
        "oidc": oidc_section("https://login.example.com", secret_file(tmp_path),
                             "https://board.example.com/login/oidc/callback")})
    with Board(None, None, listen=("0.0.0.0", 0), web=web) as board:
        assert board.warnings == []
        port = board.http.socket.getsockname()[1]
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                           context=ssl.create_default_context(cafile=str(pki.ca)))
        conn.request("GET", "/")
        assert conn.getresponse().getheader("location") == "/login"  # closed: strangers go to the login
        conn.close()
    with pytest.raises(ValueError, match="is not a loopback address"):  # the same without [oidc]
        Board(None, None, listen=("0.0.0.0", 0), web=web.model_copy(update={"oidc": None}))


def run_board(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", "board", "--no-ingest", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_bad_oidc_section_names_the_file_the_field_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "board.toml"
    config.write_text('[oidc]\nissuer = "http://login.example.com"\nclient_id = "edge-board"\n'
                      'client_secret = "hunter2"\nclient_secret_file = "oidc-secret"\n'
                      'redirect_url = "https://board.example.com/callback"\n')
    done = run_board("--state-dir", str(tmp_path), "--config", str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert all(line.startswith(f"{config}: oidc.") for line in lines), lines
    for words in ("oidc.issuer: 'http://login.example.com' must be an https:// URL",
                  "oidc.client_secret: unknown field", "oidc.redirect_url: must end in /login/oidc/callback",
                  "oidc.admin_groups: name at least one group"):
        assert any(words in line for line in lines), (words, lines)
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize("mode, words", [(None, "cannot read"), (0o644, "chmod 600")])
def test_an_unusable_secret_file_stops_the_start(tmp_path: Path, mode: int | None, words: str) -> None:
    secret = tmp_path / "oidc-secret"
    if mode is not None:
        secret.write_text(SECRET)
        secret.chmod(mode)
    config = tmp_path / "board.toml"
    config.write_text('[oidc]\nissuer = "https://login.example.com"\nclient_id = "edge-board"\n'
                      'client_secret_file = "oidc-secret"\nviewer_groups = ["plant-ops"]\n'
                      'redirect_url = "https://board.example.com/login/oidc/callback"\n')
    done = run_board("--state-dir", str(tmp_path), "--config", str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("edge-agent:")]
    assert len(lines) == 1 and lines[0].startswith("edge-agent: board: oidc.client_secret_file: "), lines
    assert str(secret) in lines[0] and words in lines[0] and SECRET not in done.stderr
