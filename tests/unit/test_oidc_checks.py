"""Single sign-on's pure parts: the config section, role mapping, the ID token checks, the
provider's discovery document, pending sign-ins and the client secret file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey, RSAKey
from pydantic import ValidationError

from agent.web.auth.oidc import (
    CLOCK_LEEWAY_S,
    PendingLogins,
    ProviderError,
    Refused,
    client_auth_method,
    key_set,
    provider_metadata,
    role_for,
    signing_algorithms,
    username_of,
    verify_id_token,
)
from agent.web.auth.oidc_login import OidcFileError, provider_tls, read_client_secret
from agent.web.config import OidcConfig

ISSUER = "https://login.example.com/realms/plant"
CLIENT = "edge-board"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_800_000_000


def config(**fields: Any) -> OidcConfig:
    base = {"issuer": ISSUER, "client_id": CLIENT, "client_secret_file": "/etc/edge-board/oidc-secret",
            "redirect_url": "https://board.example.com/login/oidc/callback",
            "admin_groups": ["plant-security"], "viewer_groups": ["plant-ops", "maintenance"]}
    return OidcConfig.model_validate({**base, **fields})


def problems(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        config(**fields)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors()]


# --- config --------------------------------------------------------------------------------------

def test_a_complete_section_validates_with_the_defaults() -> None:
    section = config()
    assert section.scopes == ["openid", "profile", "email"]
    assert (section.username_claim, section.groups_claim, section.name) == ("preferred_username", "groups",
                                                                            "single sign-on")


@pytest.mark.parametrize("field, bad, lab", [
    ("issuer", "http://login.example.com", "http://127.0.0.1:9000"), ("issuer", "login.example.com", "http://[::1]:9000"),
    ("redirect_url", "http://10.0.0.5:8080/login/oidc/callback", "http://localhost:8080/login/oidc/callback")])
def test_plain_http_is_refused_except_to_loopback(field: str, bad: str, lab: str) -> None:
    assert any(line.startswith(field) and "https://" in line for line in problems(**{field: bad}))
    assert getattr(config(**{field: lab}), field) == lab


def test_every_rule_of_the_section_is_reported_at_once() -> None:
    found = problems(redirect_url="https://board.example.com/callback", scopes=["profile"], admin_groups=[],
                     viewer_groups=[])
    assert any(line.startswith("redirect_url") and "/login/oidc/callback" in line for line in found)
    assert any(line.startswith("scopes") and "openid" in line for line in found)
    assert any(line.startswith("admin_groups") and "nobody could sign in" in line for line in found)


def test_a_group_in_both_lists_is_refused() -> None:
    assert any("plant-ops also in admin_groups" in line for line in problems(admin_groups=["plant-ops"]))


def test_an_inline_secret_is_an_unknown_field() -> None:
    assert any(line.startswith("client_secret") for line in problems(client_secret="hunter2"))


# --- role mapping --------------------------------------------------------------------------------

@pytest.mark.parametrize("groups, role", [
    (["plant-ops"], "viewer"), (["maintenance", "canteen"], "viewer"), (["plant-security"], "admin"),
    (["plant-ops", "plant-security"], "admin"),  # admin wins
    ("plant-ops", "viewer"),  # some providers send one group as a string
    (["canteen"], None), ([], None), (None, None), ({"plant-security": True}, None), ([["plant-security"]], None),
    (["Plant-Security"], None),  # exact names: a provider's group names are case-sensitive
])
def test_role_mapping(groups: Any, role: str | None) -> None:
    claims = {"sub": "u1"} if groups is None else {"sub": "u1", "groups": groups}
    assert role_for(claims, config()) == role


def test_the_groups_claim_is_configurable() -> None:
    section = config(groups_claim="roles")
    assert role_for({"roles": ["plant-security"], "groups": ["plant-ops"]}, section) == "admin"


@pytest.mark.parametrize("claims, name", [({"preferred_username": "alice"}, "alice"),
                                          ({"preferred_username": "  bob "}, "bob"), ({"preferred_username": ""}, None),
                                          ({"preferred_username": 7}, None), ({"email": "a@example.com"}, None)])
def test_username(claims: dict[str, Any], name: str | None) -> None:
    assert username_of(claims, config()) == name


# --- the ID token --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})


def jwks(*keys: Any) -> KeySet:
    return key_set({"keys": [k.as_dict(private=False) for k in keys]})


def token(key: Any, alg: str = "RS256", kid: str | None = None, **claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "u-1001", "aud": CLIENT, "iat": NOW, "exp": NOW + 300, "nonce": NONCE,
            "preferred_username": "alice", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": kid or key.kid}, body, key, algorithms=[alg])


def b64(header: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()


def verify(value: str, keyset: KeySet, now: int = NOW + 10, **given: Any) -> dict[str, Any]:
    check = {"issuer": ISSUER, "client_id": CLIENT, "nonce": NONCE, "algorithms": ["RS256"], **given}
    return verify_id_token(value, keyset, now=now, **check)


def refused(value: str, keyset: KeySet, **given: Any) -> str:
    with pytest.raises(Refused) as caught:
        verify(value, keyset, **given)
    assert caught.value.reason == "bad_token"
    return caught.value.detail


def test_a_good_token_gives_its_claims(key: RSAKey) -> None:
    claims = verify(token(key), jwks(key))
    assert (claims["preferred_username"], claims["sub"]) == ("alice", "u-1001")


def test_an_ed25519_signed_token_verifies() -> None:
    ed = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})
    assert verify(token(ed, alg="Ed25519"), jwks(ed), algorithms=["RS256", "Ed25519"])["sub"] == "u-1001"


@pytest.mark.parametrize("claims, detail", [
    ({"aud": "another-app"}, "claim aud"), ({"aud": ["another-app", "third"]}, "claim aud"),
    ({"aud": [CLIENT, "another-app"]}, "claim azp"),  # several audiences: azp must name the board
    ({"aud": [CLIENT, "another-app"], "azp": "another-app"}, "claim azp"),
    ({"iss": "https://evil.example.com"}, "claim iss"), ({"iss": ISSUER + "/"}, "claim iss"),
    ({"nonce": "replayed-nonce"}, "claim nonce"), ({"nonce": None}, "nonce"), ({"aud": None}, "aud"),
    ({"exp": NOW - CLOCK_LEEWAY_S - 1}, "expired"), ({"exp": None}, "exp"), ({"sub": None}, "sub"),
    ({"nbf": NOW + CLOCK_LEEWAY_S + 60}, "nbf"), ({"iat": NOW + CLOCK_LEEWAY_S + 60}, "claim iat"), ({"exp": "tomorrow"}, "claim exp"),
])
def test_a_token_with_a_wrong_claim_is_refused(key: RSAKey, claims: dict[str, Any], detail: str) -> None:
    assert detail in refused(token(key, **claims), jwks(key))


def test_the_clock_leeway_admits_a_token_that_just_expired(key: RSAKey) -> None:
    assert verify(token(key, exp=NOW - 5), jwks(key), now=NOW - 5 + CLOCK_LEEWAY_S - 1)["sub"] == "u-1001"


def test_a_tampered_payload_or_a_foreign_key_fails_the_signature(key: RSAKey) -> None:
    header, _, signature = token(key).split(".")
    _, payload, _ = token(key, preferred_username="mallory", groups=["plant-security"]).split(".")
    assert refused(f"{header}.{payload}.{signature}", jwks(key)) == "bad_signature"
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, other key
    assert refused(token(stranger), jwks(key)) == "bad_signature"


def test_a_key_the_provider_does_not_publish_is_unknown(key: RSAKey) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    assert refused(token(stranger), jwks(key)) == "unknown_key"


def test_alg_none_and_a_symmetric_token_keyed_with_the_public_key_are_refused(key: RSAKey) -> None:
    _, payload, _ = token(key).split(".")
    assert "'none' is not allowed" in refused(f"{b64({'alg': 'none', 'kid': 'k1'})}.{payload}.", jwks(key))
    # Algorithm confusion: HS256 keyed with the RSA public key's PEM bytes, which anyone can fetch.
    signed = f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{payload}"
    mac = hmac.new(key.as_pem(private=False), signed.encode(), hashlib.sha256).digest()
    assert "'HS256' is not allowed" in refused(f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}", jwks(key))
    assert "undecodable" in refused("not.a.token", jwks(key))


def test_an_access_token_that_does_not_match_at_hash_is_refused(key: RSAKey) -> None:
    from authlib.oidc.core.util import create_half_hash

    value = token(key, at_hash=create_half_hash("the-access-token", "RS256").decode())
    assert verify(value, jwks(key), access_token="the-access-token")["sub"] == "u-1001"
    assert "at_hash" in refused(value, jwks(key), access_token="another-access-token")


# --- the provider's discovery document -----------------------------------------------------------

def discovery(**fields: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/certs", "id_token_signing_alg_values_supported": ["RS256", "HS256"], **fields}


def test_a_good_discovery_document_is_taken() -> None:
    assert provider_metadata(discovery(), ISSUER)["token_endpoint"] == f"{ISSUER}/token"
    assert signing_algorithms(discovery()) == ["RS256"]  # never HS256
    assert signing_algorithms({}) == ["RS256"]  # the OpenID Connect default


@pytest.mark.parametrize("document, words", [
    (discovery(issuer="https://evil.example.com"), "is not the configured"),
    (discovery(token_endpoint=None), "token_endpoint"), (discovery(jwks_uri="http://login.example.com/certs"), "jwks_uri"),
    (discovery(id_token_signing_alg_values_supported=["HS256", "none"]), "the board accepts"),
    (["not", "an", "object"], "not a JSON object"),
])
def test_a_bad_discovery_document_is_a_provider_error(document: Any, words: str) -> None:
    with pytest.raises(ProviderError, match=words):
        provider_metadata(document, ISSUER)


@pytest.mark.parametrize("document", [{"keys": [{"kty": "RSA"}]}, {"no": "keys"}, {"keys": []}, ["keys"], "keys"])
def test_a_jwks_document_that_is_no_key_set_is_a_provider_error(document: Any) -> None:
    with pytest.raises(ProviderError, match="not a JWK set"):
        key_set(document)


@pytest.mark.parametrize("offered, method", [(None, "client_secret_basic"), (["client_secret_post"], "client_secret_post"),
                                             (["client_secret_basic", "client_secret_post"], "client_secret_basic"),
                                             (["private_key_jwt"], "client_secret_basic")])
def test_the_client_authenticates_as_the_provider_takes_it(offered: list[str] | None, method: str) -> None:
    assert client_auth_method({} if offered is None else {"token_endpoint_auth_methods_supported": offered}) == method


# --- pending sign-ins ----------------------------------------------------------------------------

def test_a_pending_sign_in_is_taken_once_by_the_browser_that_started_it() -> None:
    pending = PendingLogins()
    first, second = pending.begin(), pending.begin()
    assert len({first.state, first.nonce, first.verifier, first.browser, second.state}) == 5
    assert len(first.verifier) >= 43  # RFC 7636: 43 to 128 characters
    assert pending.take(first.state, first.browser) == first
    with pytest.raises(Refused, match="unknown_state"):
        pending.take(first.state, first.browser)  # a replayed callback
    with pytest.raises(Refused, match="flow_mismatch"):
        pending.take(second.state, first.browser)  # another browser's callback
    with pytest.raises(Refused, match="unknown_state"):
        pending.take(second.state, second.browser)  # a refused attempt used it up


def test_a_pending_sign_in_expires_and_a_flood_keeps_only_the_newest() -> None:
    pending = PendingLogins(lifetime_s=600, limit=3)
    old = pending.begin()
    with pytest.raises(Refused, match="expired"):
        pending.take(old.state, old.browser, now=time.monotonic() + 601)
    flood = [pending.begin() for _ in range(5)]
    assert len(pending) == 3
    with pytest.raises(Refused, match="unknown_state"):
        pending.take(flood[0].state, flood[0].browser)
    assert pending.take(flood[-1].state, flood[-1].browser) == flood[-1]


# --- the client secret file ----------------------------------------------------------------------

def test_the_secret_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    section = config(client_secret_file=str(path))
    with pytest.raises(OidcFileError, match=f"oidc.client_secret_file: cannot read {path}"):
        read_client_secret(section)
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(OidcFileError, match="is empty"):
        read_client_secret(section)
    path.write_text("s3cret\n")
    assert read_client_secret(section) == "s3cret"
    path.chmod(0o644)
    with pytest.raises(OidcFileError, match="chmod 600"):
        read_client_secret(section)


def test_a_ca_file_that_is_missing_or_not_a_certificate_is_named(tmp_path: Path) -> None:
    assert provider_tls(config()).verify_mode.name == "CERT_REQUIRED"  # the system's trust store
    with pytest.raises(OidcFileError, match=f"oidc.ca_file: cannot load {tmp_path / 'ca.pem'}"):
        provider_tls(config(ca_file=str(tmp_path / "ca.pem")))
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(OidcFileError, match="oidc.ca_file: cannot load"):
        provider_tls(config(ca_file=str(tmp_path / "ca.pem")))
