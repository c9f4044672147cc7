"""Who may use which route, in one table (pure). Every route of the app has a rule; a route
without one is refused (a test walks the app's routes so a new one cannot go out unguarded)."""

from __future__ import annotations

PUBLIC = "public"  # the login page and what it needs
VIEWER = "viewer"  # the board, its API, the report, the asset register: a logged-in user or a `read` token
METRICS = "metrics"  # /metrics: as VIEWER, or a `metrics` token
ADMIN = "admin"  # users, tokens, the audit trail: a logged-in admin only (no token)

RULES: dict[str, str] = {
    "/login": PUBLIC, "/logout": PUBLIC, "/auth.css": PUBLIC, "/login/oidc": PUBLIC, "/login/oidc/callback": PUBLIC,
    "/": VIEWER, "/board.js": VIEWER, "/board.css": VIEWER, "/report.css": VIEWER,
    "/api/fleet": VIEWER, "/api/nodes/{node}": VIEWER, "/api/events": VIEWER, "/api/me": VIEWER,
    "/openapi.json": VIEWER, "/report": VIEWER, "/api/report": VIEWER,
    "/assets": VIEWER, "/assets.csv": VIEWER, "/api/assets": VIEWER,
    "/metrics": METRICS,
    "/admin": ADMIN, "/admin/users": ADMIN, "/admin/users/remove": ADMIN, "/admin/tokens": ADMIN,
    "/admin/tokens/remove": ADMIN,
}
UNKNOWN = VIEWER  # a path no route serves: 404 for users, the login for strangers (nothing to learn)


def is_page(path: str) -> bool:
    """Browsers navigate to pages (a stranger is sent to the login); programs call the rest (401)."""
    return not (path.startswith("/api/") or path in ("/metrics", "/openapi.json", "/assets.csv"))


def allowed(rule: str, *, role: str | None, scope: str | None, open_board: bool) -> bool:
    """May a caller with this session `role`, this token `scope`, on an open board (no users), use it?"""
    if rule == PUBLIC:
        return True
    if rule == ADMIN:
        return role == "admin"
    readers = role in ("viewer", "admin") or scope == "read" or open_board
    return readers or (rule == METRICS and scope == "metrics")
