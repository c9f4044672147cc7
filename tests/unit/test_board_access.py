"""The board's access decisions, pure: the login rate limit, whose forwarding headers count,
the security headers, where the board may listen, which caller may use which rule, and the
board config file (the sample loads; a wrong field is named with its fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError
from agent.web.auth import exposure, proxy, ratelimit, rules
from agent.web.auth.headers import security_headers
from agent.web.config import BoardConfig, load

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 300.0


def test_the_fifth_failure_in_the_window_stops_logins_until_the_oldest_leaves_it() -> None:
    now = 1_000_000
    four = [now - 200_000, now - 100_000, now - 50_000, now - 1000]
    assert ratelimit.retry_after_s(four, now, failures=5, window_s=WINDOW) is None
    five = [now - 250_000, *four]
    assert ratelimit.retry_after_s(five, now, failures=5, window_s=WINDOW) == 50  # 250 s ago leaves in 50 s
    assert ratelimit.retry_after_s(five, now + 50_000, failures=5, window_s=WINDOW) is None
    old = [now - 301_000] * 10  # outside the window: forgotten
    assert ratelimit.retry_after_s(old, now, failures=5, window_s=WINDOW) is None
    assert ratelimit.retry_after_s([now] * 9, now, failures=5, window_s=WINDOW) == 300


def test_the_login_waits_for_the_longer_of_the_user_and_the_address_limit() -> None:
    now = 10_000_000
    by_user = [now - 100_000] * 5
    by_addr = [now - 10_000] * 5
    assert ratelimit.login_wait_s(by_user, [], now, failures=5, window_s=WINDOW) == 200
    assert ratelimit.login_wait_s([], by_addr, now, failures=5, window_s=WINDOW) == 290
    assert ratelimit.login_wait_s(by_user, by_addr, now, failures=5, window_s=WINDOW) == 290
    assert ratelimit.login_wait_s(by_user[:4], by_addr[:4], now, failures=5, window_s=WINDOW) is None


TRUSTED = proxy.networks(["10.0.0.5", "192.168.7.0/24"])


@pytest.mark.parametrize("peer, header, expected", [
    ("10.0.0.5", "203.0.113.9", "203.0.113.9"),  # our proxy says who
    ("203.0.113.66", "198.51.100.1", "203.0.113.66"),  # anyone else's header is ignored
    ("10.0.0.5", "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # the left part is the client's own claim
    ("10.0.0.5", "203.0.113.9, 192.168.7.20", "203.0.113.9"),  # a second trusted proxy is skipped
    ("10.0.0.5", "not-an-address", "10.0.0.5"),
    ("10.0.0.5", None, "10.0.0.5"),
    ("::ffff:10.0.0.5", "203.0.113.9", "203.0.113.9"),  # IPv4-mapped peer on a dual-stack socket
])
def test_the_client_address_comes_from_a_trusted_proxy_only(peer: str, header: str | None, expected: str) -> None:
    assert proxy.client_addr(peer, header, TRUSTED) == expected


def test_https_is_believed_from_a_trusted_proxy_only() -> None:
    assert proxy.scheme("10.0.0.5", "http", "https", TRUSTED) == "https"
    assert proxy.scheme("203.0.113.66", "http", "https", TRUSTED) == "http"
    assert proxy.scheme("10.0.0.5", "http", "gopher", TRUSTED) == "http"
    assert proxy.scheme("203.0.113.66", "https", None, TRUSTED) == "https"  # our own TLS


def test_security_headers() -> None:
    plain = dict(security_headers(False))
    csp = plain[b"content-security-policy"].decode()
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert plain[b"referrer-policy"] == b"no-referrer" and plain[b"x-content-type-options"] == b"nosniff"
    assert plain[b"x-frame-options"] == b"DENY" and b"strict-transport-security" not in plain
    assert dict(security_headers(True))[b"strict-transport-security"].startswith(b"max-age=")


@pytest.mark.parametrize("host, https, users, insecure, refused", [
    ("127.0.0.1", False, 0, False, False), ("::1", False, 0, False, False), ("localhost", False, 0, False, False),
    ("0.0.0.0", False, 0, False, True), ("0.0.0.0", True, 0, False, True), ("0.0.0.0", False, 3, False, True),
    ("10.0.0.7", True, 1, False, False), ("::", True, 1, False, False), ("board.example", False, 1, False, True),
    ("0.0.0.0", False, 0, True, False),
])
def test_only_loopback_may_listen_without_https_and_users(host, https, users, insecure, refused) -> None:
    problem = exposure.listen_problem(host, 8080, https=https, users=users, insecure=insecure)
    assert (problem is not None) == refused
    if problem:
        assert problem.startswith(f"--listen {host}:8080 is not a loopback address")
        assert ("HTTPS" in problem) == (not https) and ("board-user add" in problem) == (users == 0)


def test_an_insecure_lab_listen_says_what_is_insecure() -> None:
    assert exposure.insecure_warning("0.0.0.0", 1, https=False, users=0) == \
        "board insecure listen address=0.0.0.0:1 (plain HTTP, no users: no login): for a lab only"
    assert exposure.insecure_warning("0.0.0.0", 1, https=True, users=2) is None
    assert exposure.insecure_warning("127.0.0.1", 1, https=False, users=0) is None


# (rule, session role, token scope, open board) -> allowed
@pytest.mark.parametrize("rule, role, scope, is_open, expected", [
    (rules.PUBLIC, None, None, False, True),
    (rules.VIEWER, None, None, False, False), (rules.VIEWER, "viewer", None, False, True),
    (rules.VIEWER, "admin", None, False, True), (rules.VIEWER, None, "read", False, True),
    (rules.VIEWER, None, "metrics", False, False), (rules.VIEWER, None, None, True, True),
    (rules.METRICS, None, None, False, False), (rules.METRICS, None, "metrics", False, True),
    (rules.METRICS, None, "read", False, True), (rules.METRICS, "viewer", None, False, True),
    (rules.ADMIN, "viewer", None, False, False), (rules.ADMIN, None, "read", False, False),
    (rules.ADMIN, None, None, True, False), (rules.ADMIN, "admin", None, False, True),
    (rules.ADMIN, "root", None, False, False),
])
def test_who_may_use_what(rule, role, scope, is_open, expected) -> None:
    assert rules.allowed(rule, role=role, scope=scope, open_board=is_open) is expected


def test_the_sample_board_config_loads() -> None:
    loaded = load(ROOT / "config/board.toml")
    assert loaded.listen == "0.0.0.0:8443" and loaded.tls.enabled
    assert loaded.session.lifetime == 8 * 3600 and loaded.login.failures == 5 and loaded.login.window == 300


def test_the_defaults_listen_on_loopback() -> None:
    assert BoardConfig().listen.startswith("127.0.0.1:") and not BoardConfig().insecure_listen


@pytest.mark.parametrize("text, expected", [
    ('listen = "8080"\n', "listen: '8080' is not HOST:PORT"),
    ('[tls]\ncert_file = "a.pem"\n', "tls: set both cert_file and key_file for HTTPS, or neither"),
    ('[tls]\nclient_ca_file = "ca.pem"\n', "tls: client_ca_file needs HTTPS"),
    ('[proxy]\ntrusted = ["10.0.0.0/33"]\n', "proxy.trusted: '10.0.0.0/33' is not an address or network"),
    ('[proxy]\nclient_header = "X Forwarded"\n', "proxy.client_header: 'X Forwarded' is not an HTTP header"),
    ('[session]\nlifetime = "0s"\n', "session.lifetime: must be longer than zero"),
    ('[login]\nfailures = 0\n', "login.failures: must be at least 1"),
    ('[login]\ntries = 3\n', "login.tries: unknown field"),
])
def test_a_bad_board_config_names_the_file_the_field_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(path)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{path}: {expected}"), problem


def test_the_rule_table_opens_only_the_login_and_keeps_admin_pages_for_admins() -> None:
    """The table is what the HTTP test enforces route by route; here, that the table itself is right."""
    assert {p for p, r in rules.RULES.items() if r == rules.PUBLIC} == {"/login", "/logout", "/auth.css",
                                                                        "/login/oidc", "/login/oidc/callback"}
    assert {p for p, r in rules.RULES.items() if r == rules.ADMIN} == {p for p in rules.RULES if
                                                                       p.startswith("/admin")}
    assert rules.RULES["/metrics"] == rules.METRICS and rules.UNKNOWN == rules.VIEWER
    assert {r for p, r in rules.RULES.items() if p.startswith("/api/")} == {rules.VIEWER}
