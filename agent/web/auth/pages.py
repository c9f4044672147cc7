"""The login, refusal and admin pages as HTML, pure (no script, no inline style: /auth.css)."""

from __future__ import annotations

import time
from html import escape

from agent.web.auth.audit import Entry
from agent.web.auth.tokens import SCOPES, Token
from agent.web.auth.users import MIN_PASSWORD, ROLES, User


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)} · Edge readiness board</title>"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<link rel=\"stylesheet\" href=\"/auth.css\"></head>"
            f"<body><main>{body}</main></body></html>")


def login_page(notice: str = "", *, open_board: bool = False, sso: str | None = None) -> str:
    """The password form; with `sso` (the provider's name), a link to single sign-on above it."""
    note = f"<p class=\"notice\" id=\"notice\">{escape(notice)}</p>" if notice else ""
    if sso is not None:  # a link, not a form: the CSP's form-action would stop a form's redirect to the provider
        note += (f"<p class=\"sso\"><a class=\"button\" id=\"sso\" href=\"/login/oidc\">Sign in with {escape(sso)}"
                 "</a></p>")
    if open_board:
        note += ("<p class=\"notice\">No users yet: this board is open to anyone on this machine. Add one with "
                 "<code>edge-agent board-user add NAME --role admin</code>.</p>")
    return _page("Log in", "<h1>Edge readiness board</h1>" + note +
                 "<form method=\"post\" action=\"/login\" class=\"login\">"
                 "<label>User <input name=\"username\" id=\"username\" autocomplete=\"username\" required "
                 "autofocus></label>"
                 "<label>Password <input name=\"password\" id=\"password\" type=\"password\" "
                 "autocomplete=\"current-password\" required></label>"
                 "<button type=\"submit\" id=\"login\">Log in</button></form>")


def refusal_page(status: int, message: str) -> str:
    return _page("Refused", f"<h1>{status}</h1><p class=\"notice\" id=\"refusal\">{escape(message)}</p>"
                            "<p><a href=\"/\">The board</a> · <a href=\"/login\">Log in</a></p>")


def _when(ms: int | None) -> str:
    return "—" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _remove(action: str, field: str, value: str, label: str) -> str:
    return (f"<form method=\"post\" action=\"{action}\" class=\"inline\"><input type=\"hidden\" name=\"{field}\" "
            f"value=\"{escape(value)}\"><button type=\"submit\">{label}</button></form>")


def _options(values: tuple[str, ...]) -> str:
    return "".join(f"<option>{v}</option>" for v in values)


def admin_page(me: str, people: list[User], keys: list[Token], trail: list[Entry], notice: str = "",
               secret: str = "") -> str:
    shown = (f"<p class=\"notice\">{escape(notice)}</p>" if notice else "") + (
        f"<p class=\"secret\">Copy it now, it is not shown again: <code id=\"new-token\">{escape(secret)}</code></p>"
        if secret else "")
    user_rows = "".join(f"<tr><td>{escape(u.username)}</td><td>{u.role}</td><td>{_when(u.changed_ms)}</td><td>"
                        f"{_remove('/admin/users/remove', 'username', u.username, 'Remove')}</td></tr>"
                        for u in people)
    token_rows = "".join(f"<tr><td>{escape(t.name)}</td><td>{t.scope}</td><td>{_when(t.created_ms)}</td>"
                         f"<td>{_when(t.last_used_ms)}</td><td>"
                         f"{_remove('/admin/tokens/remove', 'name', t.name, 'Revoke')}</td></tr>" for t in keys)
    audit_rows = "".join(f"<tr><td>{_when(e.ms)}</td><td>{e.event}</td><td>{escape(e.username)}</td>"
                         f"<td>{escape(e.addr)}</td><td>{escape(e.detail)}</td></tr>" for e in trail)
    return _page("Admin", f"<h1>Board access</h1><p>Logged in as {escape(me)} · <a href=\"/\">the board</a> · "
                 "<form method=\"post\" action=\"/logout\" class=\"inline\" id=\"logout\"><button type=\"submit\">"
                 "Log out</button></form></p>"
                 f"{shown}<h2>Users</h2><table id=\"users\"><tr><th>User</th><th>Role</th><th>Changed</th><th></th>"
                 f"</tr>{user_rows}</table>"
                 "<form method=\"post\" action=\"/admin/users\" class=\"add\"><input name=\"username\" "
                 "placeholder=\"user\" required><input name=\"password\" type=\"password\" "
                 f"autocomplete=\"new-password\" placeholder=\"password ({MIN_PASSWORD}+ characters)\" required>"
                 f"<select name=\"role\">{_options(ROLES)}</select>"
                 "<button type=\"submit\">Add or change user</button></form>"
                 "<h2>API tokens</h2><table id=\"tokens\"><tr><th>Name</th><th>Scope</th><th>Made</th><th>Last used"
                 f"</th><th></th></tr>{token_rows}</table>"
                 "<form method=\"post\" action=\"/admin/tokens\" class=\"add\"><input name=\"name\" "
                 f"placeholder=\"name, e.g. prometheus\" required><select name=\"scope\">{_options(SCOPES)}</select>"
                 "<button type=\"submit\">Make token</button></form>"
                 "<h2>Audit</h2><table id=\"audit\"><tr><th>When</th><th>Event</th><th>User</th><th>Address</th>"
                 f"<th>Detail</th></tr>{audit_rows}</table>")
