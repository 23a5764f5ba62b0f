"""Discovery (OIDC Discovery 1.0 §3, RFC 8414 §2) and the JWKS (RFC 7517)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client as HttpClient

pytestmark = pytest.mark.django_db

METADATA_PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
ENDPOINTS = {
    "authorization_endpoint": "/oauth/authorize",
    "token_endpoint": "/oauth/token",
    "userinfo_endpoint": "/oauth/userinfo",
    "jwks_uri": "/oauth/jwks",
    "end_session_endpoint": "/oauth/logout",
    "introspection_endpoint": "/oauth/introspect",
    "revocation_endpoint": "/oauth/revoke",
}


@pytest.mark.parametrize("path", METADATA_PATHS)
def test_metadata_lists_every_endpoint_under_the_issuer(client: HttpClient, path: str) -> None:
    # OIDC Discovery 1.0 §3, §4.3 (issuer identical); RFC 8414 §2, §3.3
    metadata = client.get(path).json()
    assert metadata["issuer"] == settings.ISSUER
    for name, endpoint in ENDPOINTS.items():
        assert metadata[name] == settings.ISSUER + endpoint, name


@pytest.mark.parametrize("path", METADATA_PATHS)
def test_metadata_advertises_only_the_safe_profile(client: HttpClient, path: str) -> None:
    # RFC 9700 §2.1.1 (S256), §2.1.2 (no implicit), §2.4 (no password); RFC 9207 §3
    metadata = client.get(path).json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    grants = set(metadata["grant_types_supported"])
    assert grants.isdisjoint({"implicit", "password"})
    assert "authorization_code" in grants
    assert "none" not in metadata["id_token_signing_alg_values_supported"]
    assert not any(
        alg.startswith("HS") for alg in metadata["id_token_signing_alg_values_supported"]
    )
    assert "openid" in metadata["scopes_supported"]


def test_both_metadata_documents_agree(client: HttpClient) -> None:
    # RFC 8414 §3: the same authorization server described twice
    first, second = (client.get(path).json() for path in METADATA_PATHS)
    assert first == second


def test_advertised_endpoints_answer(client: HttpClient) -> None:
    # OIDC Discovery 1.0 §3: every listed URL is live (none is a 404)
    metadata = client.get(METADATA_PATHS[0]).json()
    for name in ENDPOINTS:
        path = metadata[name].removeprefix(settings.ISSUER)
        response = client.get(path) if name != "token_endpoint" else client.post(path)
        assert response.status_code != 404, name


def test_jwks_is_cacheable_and_holds_public_members_only(client: HttpClient) -> None:
    # RFC 7517 §4, §5; RFC 7518 §6.2.2, §6.3.2 (private members d, p, q, dp, dq, qi, oth)
    response = client.get("/oauth/jwks")
    assert response.status_code == 200
    max_age = re.search(r"max-age=(\d+)", response["Cache-Control"])
    assert max_age is not None
    assert int(max_age.group(1)) == settings.JWKS_MAX_AGE
    jwks = response.json()
    assert jwks["keys"]
    private_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    for jwk in jwks["keys"]:
        assert private_members.isdisjoint(jwk), jwk["kid"]
        assert jwk["use"] == "sig"
        assert jwk["kid"]
        assert jwk["alg"] in {"RS256", "ES256", "EdDSA"}
    assert len({jwk["kid"] for jwk in jwks["keys"]}) == len(jwks["keys"])


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/oauth/jwks"])
def test_discovery_and_jwks_answer_head(client, path: str) -> None:
    # RFC 9110 §9.3.2: HEAD is GET without the body; caches and monitors use it
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""
