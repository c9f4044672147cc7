"""Who may use the board (issue #18): local users with Argon2id passwords, browser sessions,
API bearer tokens with a scope, roles (viewer, admin), the login rate limit, the audit trail,
security headers and the proxy rules; all state in the fleet store, so it survives restarts and
every web process sharing the store agrees.

    users, sessions, tokens, audit   the store tables (board_users, board_sessions, board_tokens,
                                     board_audit) and what is done with them
    ratelimit, proxy, headers, rules, exposure   pure decisions: may this login be tried now,
                                     who and over what is the client, which headers, who may use
                                     which route, may the board listen there
    access, middleware               the caller of each request, the rules applied to it
    routes, admin, pages             /login, /logout, /api/me, /admin and their HTML

Adding a login method (OpenID Connect, agent/web/auth/oidc.py): prove who the user is, then
either, inside a request handler,

    return await routes.complete_login(request, username, role, "oidc")

which starts the session, writes the audit row and log line, sets the cookie (Secure when the
client used HTTPS, HttpOnly, SameSite=Lax, expiring with the session) and redirects to the board;
or, at the store level, `sessions.start(db, username, role, method, addr=..., lifetime_s=...,
now_ms=...) -> token` for the cookie value (access.COOKIE). The caller of a request is
`routes.caller_of(request)` (its address as the trusted proxy says, https or not), the board's
store, config and clock `routes.access_of(request)`. Give the method's own routes a rule in
rules.RULES (PUBLIC for the redirect and the callback; the table test walks every route) and add
them to the app where agent.web.board builds it (before or after `secure`: the middleware looks
the route up per request); its settings go in a section of agent.web.config.BoardConfig; its
button on the login form in pages.login_page. A callback's POST, if any, passes the same
cross-site check as every POST (middleware.same_origin); a GET callback is not checked.
Sessions made by a method other than "password" are not ended by `board-user remove`, which
knows only local users; they end at logout or expiry.
"""

from __future__ import annotations

from fastapi import FastAPI

from agent.web.auth.access import Access


def secure(app: FastAPI, access: Access) -> FastAPI:
    """Add the login, logout and admin routes and the access middleware to the board's app."""
    from agent.web.auth.admin import admin_routes
    from agent.web.auth.middleware import AccessMiddleware
    from agent.web.auth.routes import login_routes

    app.state.access = access
    login_routes(app)
    if access.config.oidc is not None:
        from agent.web.auth.oidc_login import board_router

        # The routes themselves: include_router would nest them in one route without a path, and the
        # middleware finds each route's rule by its path.
        app.router.routes.extend(board_router(access).routes)
    admin_routes(app)
    app.add_middleware(AccessMiddleware, access=access, router=app.router)
    return app
