"""Single sign-on through a company's OpenID Connect provider: the pure checks (role mapping, the
ID token, the provider's discovery document) and the pending sign-ins. The config section is
agent.web.config.OidcConfig.

The authorization-code flow with PKCE, state and nonce; the HTTP side is agent.web.auth.oidc_login.
The ID token's signature and claims are checked by joserfc and Authlib's `CodeIDToken`: JWS/JWK
handling is where hand-written code goes wrong (algorithm confusion, `alg: none`, audience lists).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from agent.web.config import OidcConfig, url_problem

Role = Literal["viewer", "admin"]

START_PATH = "/login/oidc"
# Asymmetric signatures only: an HMAC-signed ID token would be keyed with the client secret, and
# `none` is no signature at all.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "Ed25519",
                      "EdDSA")  # RFC 9864 names Ed25519; older providers say EdDSA
CLOCK_LEEWAY_S = 60  # the board's and the provider's clocks may differ this much
FLOW_LIFETIME_S = 600.0  # a person has this long at the provider's sign-in page
MAX_PENDING = 10_000  # pending sign-ins kept; the oldest go first, so a flood cannot fill memory


# --- what a sign-in can end in -------------------------------------------------------------------

REFUSALS: dict[str, tuple[int, str]] = {
    "unknown_state": (400, "This sign-in link is unknown, already used or expired. Start again."),
    "flow_mismatch": (400, "This sign-in was started in another browser. Start again from this one."),
    "provider_denied": (403, "The sign-in provider did not sign you in."),
    "code_refused": (403, "The sign-in provider refused the sign-in code. Start again."),
    "bad_token": (403, "The sign-in provider's answer did not pass the board's checks."),
    "no_username": (403, "The sign-in provider did not say who you are."),
    "no_role": (403, "Your account is not in a group this board admits. Ask the board's administrator."),
}


class Refused(Exception):
    """A sign-in the board turns down; `reason` is a key of REFUSALS, `detail` is for the log only."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class ProviderError(Exception):
    """The provider cannot be reached or answered nonsense: nobody can sign in with it just now."""


# --- the pure checks -----------------------------------------------------------------------------

def role_for(claims: Mapping[str, Any], config: OidcConfig) -> Role | None:
    """admin for a member of any admin group, else viewer for a viewer group, else None (refused).
    The claim may be a list of group names or one name."""
    raw = claims.get(config.groups_claim)
    if isinstance(raw, str):
        raw = [raw]
    groups = {group for group in raw if isinstance(group, str)} if isinstance(raw, list) else set()
    if groups & set(config.admin_groups):
        return "admin"
    if groups & set(config.viewer_groups):
        return "viewer"
    return None


def username_of(claims: Mapping[str, Any], config: OidcConfig) -> str | None:
    value = claims.get(config.username_claim)
    return value.strip() if isinstance(value, str) and value.strip() else None


def verify_id_token(id_token: str, keys: KeySet, *, issuer: str, client_id: str, nonce: str,
                    algorithms: list[str], access_token: str | None = None, now: int | None = None) -> dict[str, Any]:
    """The ID token's claims once its signature verifies against the provider's keys and iss, aud
    (and azp), exp, iat, nonce (and at_hash) are right; Refused("bad_token") naming what failed."""
    try:
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except BadSignatureError:
        raise Refused("bad_token", "bad_signature") from None
    except InvalidKeyIdError:
        raise Refused("bad_token", "unknown_key") from None
    except (JoseError, ValueError) as exc:  # unknown key, algorithm not allowed, not a JWS at all
        raise Refused("bad_token", f"undecodable {type(exc).__name__}: {exc}") from None
    options = {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id},
               "nonce": {"essential": True, "value": nonce}}
    claims = CodeIDToken(token.claims, token.header, options,
                         {"nonce": nonce, "client_id": client_id, "access_token": access_token})
    try:
        claims.validate(now=int(time.time()) if now is None else now, leeway=CLOCK_LEEWAY_S)
    except ExpiredTokenError:
        raise Refused("bad_token", "expired") from None
    except (InvalidClaimError, MissingClaimError) as exc:
        raise Refused("bad_token", f"claim {exc.claim}: {exc.error}") from None
    except JoseError as exc:  # e.g. issued in the future
        raise Refused("bad_token", f"{type(exc).__name__}: {exc}") from None
    return dict(claims)


def provider_metadata(document: Any, issuer: str) -> dict[str, Any]:
    """The discovery document, checked: its issuer is the configured one (OpenID Connect Discovery
    4.3), it names the endpoints the flow needs over https, and it signs in a way the board accepts."""
    if not isinstance(document, dict):
        raise ProviderError("the discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        raise ProviderError(f"the discovery document's issuer {document.get('issuer')!r} is not the configured "
                            f"{issuer!r}: set oidc.issuer exactly as the provider states it")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        url = document.get(name)
        if not isinstance(url, str) or url_problem(url):
            raise ProviderError(f"the discovery document's {name} {url!r} is missing or not https")
    if not signing_algorithms(document):
        raise ProviderError(f"the provider signs ID tokens with {document.get('id_token_signing_alg_values_supported')}"
                            f"; the board accepts {', '.join(SIGNING_ALGORITHMS)}")
    return document


def key_set(document: Any) -> KeySet:
    """The provider's published keys (its jwks_uri document)."""
    try:
        return KeySet.import_key_set(document)
    except (JoseError, TypeError, KeyError, AttributeError) as exc:
        raise ProviderError(f"the provider's jwks_uri document is not a JWK set: {type(exc).__name__} {exc}") from None


def client_auth_method(document: Mapping[str, Any]) -> str:
    """How the board proves itself at the token endpoint: HTTP Basic (the OpenID Connect default), or the
    secret in the form when that is all the provider takes."""
    offered = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return "client_secret_post" if "client_secret_basic" not in offered and "client_secret_post" in offered \
        else "client_secret_basic"


def signing_algorithms(document: Mapping[str, Any]) -> list[str]:
    """The algorithms both the provider uses and the board accepts (RS256 when the document names none,
    the OpenID Connect default)."""
    offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    return [alg for alg in SIGNING_ALGORITHMS if isinstance(offered, list) and alg in offered]


# --- sign-ins under way --------------------------------------------------------------------------

@dataclass(frozen=True)
class Pending:
    """One sign-in between the redirect to the provider and its callback; kept on the server only."""

    state: str
    browser: str  # the random value of the flow cookie: binds the callback to the browser that started
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))  # PKCE; 64 characters
    started: float = field(default_factory=time.monotonic)


class PendingLogins:
    """Pending sign-ins by state: each is taken once (a replayed callback finds nothing), expires after
    FLOW_LIFETIME_S, and at most MAX_PENDING are kept."""

    def __init__(self, lifetime_s: float = FLOW_LIFETIME_S, limit: int = MAX_PENDING) -> None:
        self.lifetime_s, self.limit = lifetime_s, limit
        self._by_state: OrderedDict[str, Pending] = OrderedDict()

    def begin(self) -> Pending:
        pending = Pending(state=secrets.token_urlsafe(24), browser=secrets.token_urlsafe(24))
        self._by_state[pending.state] = pending
        while len(self._by_state) > self.limit:
            self._by_state.popitem(last=False)
        return pending

    def take(self, state: str, browser: str | None, now: float | None = None) -> Pending:
        pending = self._by_state.pop(state, None)
        if pending is None:
            raise Refused("unknown_state")
        if (time.monotonic() if now is None else now) - pending.started > self.lifetime_s:
            raise Refused("unknown_state", "expired")
        if browser is None or not hmac.compare_digest(browser, pending.browser):
            raise Refused("flow_mismatch")
        return pending

    def discard(self, state: str) -> None:
        self._by_state.pop(state, None)

    def __len__(self) -> int:
        return len(self._by_state)
