"""Federation end to end (issue 17): a second Tessera started by the suite
(tests/federation/upstream_tessera.py) is the generic OpenID Connect upstream of the suite's
Tessera (the live server). A person signs in through both in Chromium, then a relying party
(Authlib, as tests/rp.py) gets tokens from the first.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.federation.upstream_tessera import UpstreamTessera
from tests.rp import Browser, new_verifier


def test_the_upstream_tessera_signs_its_person_in_for_the_suites_callback(
    upstream_tessera: UpstreamTessera,
) -> None:
    """The fixture itself, driven without the suite's Tessera: discovery, the registered
    client's code flow (PKCE, nonce) with Authlib, and a person made with createuser whose
    verified address the ID token vouches for."""
    upstream = upstream_tessera
    metadata = requests.get(f"{upstream.issuer}/.well-known/openid-configuration", timeout=10)
    assert metadata.status_code == 200
    discovered = metadata.json()
    assert discovered["issuer"] == upstream.issuer  # OIDC Discovery 1.0 §4.3
    person = upstream.create_person("grace@upstream.example", "Grace Hopper")

    client = OAuth2Session(
        upstream.client_id, upstream.client_secret, redirect_uri=upstream.client.redirect_uri,
        code_challenge_method="S256", scope="openid email profile",
    )  # fmt: skip
    verifier, nonce = new_verifier(), new_verifier()
    url, state = client.create_authorization_url(
        discovered["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    pages = Browser(upstream.issuer)
    try:
        response = pages.visit(url, email=person.email, password=person.password)
    finally:
        pages.http.close()

    assert response.is_redirect, f"{response.status_code} {response.url}\n{response.text[:1500]}"
    location = response.headers["Location"]
    assert location.startswith(upstream.client.redirect_uri + "?")
    assert pages.filled == ["password", "consent"]  # a third party's client: consent asked
    answer = parse_qs(urlsplit(location).query)
    assert answer["state"] == [state]
    assert answer["iss"] == [upstream.issuer]  # RFC 9207
    token = client.fetch_token(
        discovered["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    keys = KeySet.import_key_set(requests.get(discovered["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["aud"], claims["nonce"]) == (
        upstream.issuer,
        upstream.client_id,
        nonce,
    )
    assert (claims["sub"], claims["email"], claims["email_verified"]) == (
        person.id,
        person.email,
        True,
    )
    client.close()
