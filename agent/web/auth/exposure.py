"""Safe by default, pure: whether the board may listen where it was asked to. Loopback is always
allowed; any other address needs HTTPS (its own certificate, or a trusted TLS-terminating proxy)
and at least one user, unless the operator explicitly accepts a lab setup (insecure_listen)."""

from __future__ import annotations

from agent.core.settings import is_loopback


def listen_problem(host: str, port: int, *, https: bool, users: int, insecure: bool) -> str | None:
    """One line saying what to configure, or None when the board may listen there."""
    if is_loopback(host) or insecure:
        return None
    missing = []
    if not https:
        missing.append("HTTPS (tls.cert_file and tls.key_file, or proxy.trusted behind a TLS proxy, "
                       "in the file given with --config)")
    if users == 0:
        missing.append("a user (edge-agent board-user add NAME --role admin)")
    if not missing:
        return None
    return (f"--listen {host}:{port} is not a loopback address: the board would show the fleet's weak spots to "
            f"anyone who reaches the port; configure {' and '.join(missing)}, listen on 127.0.0.1, or pass "
            "--insecure-listen for a lab")


def insecure_warning(host: str, port: int, *, https: bool, users: int) -> str | None:
    """The warning an --insecure-listen start logs, or None when nothing is insecure after all."""
    if is_loopback(host) or (https and users):
        return None
    what = [w for w, bad in (("plain HTTP", not https), ("no users: no login", users == 0)) if bad]
    return f"board insecure listen address={host}:{port} ({', '.join(what)}): for a lab only"
