"""A small OpenID Connect provider for tests and labs: a real HTTP server on a local port.

    GET  /.well-known/openid-configuration   discovery
    GET  /authorize    signs the configured test user in at once (no login page) and redirects back
                       with a code; refuses an unknown client or redirect URL, and a request without PKCE
    POST /token        the code for tokens: client secret (Basic or in the form), the redirect URL,
                       the PKCE verifier (S256) and each code once; the ID token is signed with a key
                       made at start (RS256, or algorithm="Ed25519")
    GET  /jwks         the public key

`Misbehaviour` makes it the hostile provider of a test: a token for another audience or issuer,
an expired one, a wrong nonce, one signed with a key it does not publish, or a refusal.
It serves plain HTTP, or HTTPS with `tls=(cert_file, key_file)`; it is meant for 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import Key, OKPKey, RSAKey

from simulators.localnet import free_port

CODE_LIFETIME_S = 60


@dataclass
class User:
    sub: str = "u-1001"
    username: str = "alice"
    groups: list[str] = field(default_factory=lambda: ["plant-ops"])
    email: str = "alice@example.com"


@dataclass
class Misbehaviour:
    """What the provider gets wrong in the tokens it issues next (all off by default)."""

    audience: str | None = None  # aud other than the client's id
    issuer: str | None = None  # iss other than its own
    expires_in: int = 300  # negative: already expired when issued
    nonce: str | None = None  # a nonce other than the one the client sent
    # "unpublished": signed with another key under that key's kid; "forged": with another key under the
    # published key's kid, so the signature does not verify
    signing: Literal["own", "unpublished", "forged"] = "own"
    deny: str | None = None  # /authorize answers with this OAuth error (e.g. access_denied)


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    issued: float
    user: User


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _new_key(algorithm: str) -> Key:
    parameters = {"kid": secrets.token_hex(8), "use": "sig", "alg": algorithm}
    if algorithm in ("Ed25519", "EdDSA"):
        return OKPKey.generate_key("Ed25519", parameters=parameters)
    return RSAKey.generate_key(2048, parameters=parameters)


class OidcProvider:
    """Start with `with OidcProvider(...) as provider:`; `provider.issuer` is its URL."""

    def __init__(self, client_id: str, client_secret: str, redirect_uris: list[str], user: User | None = None,
                 *, algorithm: str = "RS256", host: str = "127.0.0.1", port: int | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.client_id, self.client_secret, self.redirect_uris = client_id, client_secret, redirect_uris
        self.user = user or User()
        self.algorithm = algorithm
        self.key, self.other_key = _new_key(algorithm), _new_key(algorithm)
        self.misbehaviour = Misbehaviour()
        self.host, self.port = host, port or free_port(host)
        self.tls = tls
        self.issuer = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.grants: dict[str, Grant] = {}
        self.used_codes: set[str] = set()
        self.auth_methods = ["client_secret_basic", "client_secret_post"]  # how clients may present the secret
        self.requests: list[str] = []  # "METHOD /path" of every request, for tests to read
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        provider = self

        class Handler(_Handler):
            oidc = provider

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, name="oidc-provider", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the endpoints' logic --------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [self.algorithm],
                "code_challenge_methods_supported": ["S256"], "grant_types_supported": ["authorization_code"],
                "token_endpoint_auth_methods_supported": self.auth_methods,
                "scopes_supported": ["openid", "profile", "email", "groups"]}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """(302, Location) back to the client, or (400, why) when it cannot safely redirect."""
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return 400, "unknown client or redirect_uri"
        back = {"state": query.get("state", "")}
        if self.misbehaviour.deny:
            back["error"] = self.misbehaviour.deny
        elif query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            back["error"] = "invalid_request"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            back["error"] = "invalid_request"  # PKCE is required here, as OAuth 2.1 has it
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self.grants[code] = Grant(self.client_id, redirect_uri, query.get("nonce", ""),
                                          query["code_challenge"], time.time(), self.user)
            back["code"] = code
        return 302, f"{redirect_uri}?{urlencode(back)}"

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if "client_secret_post" not in self.auth_methods:
            secret = None
        if authorization and authorization.startswith("Basic ") and "client_secret_basic" in self.auth_methods:
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id or not hmac.compare_digest(secret or "", self.client_secret):
            return 401, {"error": "invalid_client"}
        code = form.get("code", "")
        with self._lock:
            grant = None if code in self.used_codes else self.grants.pop(code, None)
            self.used_codes.add(code)  # a code counts as used once shown, whatever follows
        if grant is None or time.time() - grant.issued > CODE_LIFETIME_S:
            return 400, {"error": "invalid_grant", "error_description": "unknown, used or expired code"}
        if form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri does not match"}
        if not hmac.compare_digest(_s256(form.get("code_verifier", "")), grant.challenge):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
        access_token = secrets.token_urlsafe(32)
        return 200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                     "id_token": self.id_token(grant, access_token), "scope": "openid profile email"}

    def id_token(self, grant: Grant, access_token: str) -> str:
        bad, now = self.misbehaviour, int(time.time())
        claims = {"iss": bad.issuer or self.issuer, "sub": grant.user.sub, "aud": bad.audience or grant.client_id,
                  "iat": now, "exp": now + bad.expires_in, "auth_time": now,
                  "nonce": grant.nonce if bad.nonce is None else bad.nonce,
                  "at_hash": create_half_hash(access_token, self.algorithm).decode(),
                  "preferred_username": grant.user.username, "email": grant.user.email, "groups": grant.user.groups}
        key = self.key if bad.signing == "own" else self.other_key
        kid = self.key.kid if bad.signing == "forged" else key.kid
        return jwt.encode({"alg": self.algorithm, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[self.algorithm])

    def rotate_key(self) -> None:
        """A new signing key, the only one /jwks publishes from now on."""
        self.key = _new_key(self.algorithm)


class _Handler(BaseHTTPRequestHandler):
    oidc: OidcProvider

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests` instead

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Cache-Control": "no-store", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:  # the base class's names
        parts = urlsplit(self.path)
        self.oidc.requests.append(f"GET {parts.path}")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/.well-known/openid-configuration":
            self._json(200, self.oidc.discovery())
        elif parts.path == "/jwks":
            self._json(200, self.oidc.jwks())
        elif parts.path == "/authorize":
            status, where = self.oidc.authorize(query)
            if status == 302:
                self._send(302, b"", "text/plain", {"Location": where})
            else:
                self._send(status, where.encode(), "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # the base class's names
        path = urlsplit(self.path).path
        self.oidc.requests.append(f"POST {path}")
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if path == "/token":
            self._json(*self.oidc.token(form, self.headers.get("Authorization")))
        else:
            self._send(404, b"not found", "text/plain")
