"""Security headers on every response the board sends, pure."""

from __future__ import annotations

# Scripts and styles from the board's own files only (no inline script or style anywhere);
# nothing may frame the board (clickjacking); forms post to the board only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HSTS_S = 365 * 86400  # browsers keep to HTTPS for a year once they have seen it


def security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff"),
               (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin"),
               (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), usb=(), serial=()")]
    if https:
        headers.append((b"strict-transport-security", f"max-age={HSTS_S}".encode()))
    return headers
