"""The upstream client (apps/federation/upstream.py) against the GitHub and Google stand-ins:
the happy paths, then every failure of issue 17 — each an UpstreamError with its code, never
another exception."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apps.core import cache
from apps.federation import upstream
from apps.federation.models import ClientAuthMethod, ProviderKind
from apps.federation.upstream import UpstreamError, UpstreamIdentity
from tests.federation.standins import GitHubStandIn, GoogleStandIn, StandIn, make_provider, s256

pytestmark = pytest.mark.django_db

REDIRECT_URI = "https://tessera.test/login/federated/up/callback"


def sign_in(provider: Any, standin: StandIn, **authorize: str) -> UpstreamIdentity:
    """One upstream sign-in as the flow drives it: URL, the provider's redirect, exchange."""
    verifier, nonce, state = (secrets.token_urlsafe(48) for _ in range(3))
    url = upstream.authorization_url(
        provider,
        redirect_uri=REDIRECT_URI,
        state=state,
        nonce=nonce,
        code_verifier=verifier,
        **authorize,
    )
    params = standin.authorize(url)
    assert params["state"] == state
    return upstream.complete(
        provider,
        redirect_uri=REDIRECT_URI,
        code=params["code"],
        code_verifier=verifier,
        nonce=nonce,
    )


def refused(code: str, call: Callable[[], object]) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        call()
    assert info.value.code == code, (info.value.code, info.value.detail)
    assert info.value.message  # a sentence for the person
    return info.value


# --- happy paths ------------------------------------------------------------------------------


def test_google_sign_in_gives_the_verified_identity(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    google_standin.user = {**google_standin.user, "email": "Pat@Example.COM"}

    identity = sign_in(provider, google_standin)

    assert identity.subject == "110169484474386276334"
    assert identity.email == "pat@example.com"
    assert identity.email_verified is True
    assert identity.name == "Pat Example"
    assert identity.claims["iss"] == google_standin.url
    # the client authenticated with client_secret_basic and sent its PKCE verifier (the
    # stand-in refuses a wrong one), and no secret travelled in the form
    assert "client_secret" not in google_standin.token_requests[-1]
    assert google_standin.token_requests[-1]["grant_type"] == "authorization_code"


def test_authorization_url_carries_pkce_s256_nonce_and_never_lets_extra_params_override(
    google_standin: GoogleStandIn,
) -> None:
    provider = make_provider(
        google_standin,
        extra_params={
            "prompt": "select_account",
            "state": "evil",
            "redirect_uri": "https://x",
            "code_verifier": "x",
            "url": "https://x",
        },
        hosted_domains=["example.com"],
        scopes="email profile",
    )
    verifier = secrets.token_urlsafe(48)
    url = upstream.authorization_url(
        provider,
        redirect_uri=REDIRECT_URI,
        state="the-state",
        nonce="the-nonce",
        code_verifier=verifier,
        login_hint="pat@example.com",
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(google_standin.url + "/o/oauth2/v2/auth?")
    assert query["code_challenge"] == s256(verifier)  # RFC 7636 §4.2
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == "the-state"
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["nonce"] == "the-nonce"
    assert query["prompt"] == "select_account"
    assert "code_verifier" not in query  # never sent; and a clash with Authlib is no TypeError
    assert query["login_hint"] == "pat@example.com"
    assert query["hd"] == "example.com"  # one hosted domain: Google's account chooser hint
    assert query["scope"].split()[0] == "openid"  # added: without it no ID token


def test_userinfo_is_merged_when_configured(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin, use_userinfo=True)
    google_standin.userinfo_overrides = {"picture": "https://example.com/p.png", "iss": "x"}

    identity = sign_in(provider, google_standin)

    assert identity.claims["picture"] == "https://example.com/p.png"
    assert identity.claims["iss"] == google_standin.url  # userinfo cannot restate the ID token's
    assert google_standin.hits["userinfo"] == 1


def test_userinfo_about_someone_else_is_refused(google_standin: GoogleStandIn) -> None:
    # OIDC Core §5.3.2: userinfo's sub must be the ID token's
    provider = make_provider(google_standin, use_userinfo=True)
    google_standin.userinfo_overrides = {"sub": "someone-else"}
    refused("invalid_response", lambda: sign_in(provider, google_standin))


def test_google_unverified_email_is_not_verified(google_standin: GoogleStandIn) -> None:
    google_standin.user = {**google_standin.user, "email_verified": False}
    identity = sign_in(make_provider(google_standin), google_standin)
    assert identity.email == "pat@example.com"
    assert identity.email_verified is False


def test_string_true_email_verified_counts(google_standin: GoogleStandIn) -> None:
    # some providers send "true" (a string) for email_verified
    google_standin.user = {**google_standin.user, "email_verified": "true"}
    assert sign_in(make_provider(google_standin), google_standin).email_verified is True


def test_github_sign_in_takes_the_verified_primary_email(github_standin: GitHubStandIn) -> None:
    github_standin.emails = [
        {"email": "other@example.com", "primary": False, "verified": True},
        {"email": "Octo@Example.com", "primary": True, "verified": True},
    ]
    identity = sign_in(
        make_provider(github_standin, client_auth_method="client_secret_post"), github_standin
    )

    assert identity.subject == "583231"
    assert identity.email == "octo@example.com"
    assert identity.email_verified is True
    assert identity.display == "octocat"
    assert identity.claims["login"] == "octocat"
    assert github_standin.hits["user"] == github_standin.hits["emails"] == 1


def test_github_unverified_primary_email_is_none(github_standin: GitHubStandIn) -> None:
    # a verified secondary address does not stand in for the primary
    github_standin.emails = [
        {"email": "octo@example.com", "primary": True, "verified": False},
        {"email": "other@example.com", "primary": False, "verified": True},
    ]
    identity = sign_in(make_provider(github_standin), github_standin)
    assert identity.email == ""
    assert identity.email_verified is False


def test_github_metadata_points_at_the_enterprise_layout_and_github_com_at_its_api(
    github_standin: GitHubStandIn,
) -> None:
    provider = make_provider(github_standin)
    assert upstream.metadata(provider)["api"] == github_standin.url + "/api/v3"
    provider.issuer = "https://github.com"
    assert upstream.metadata(provider) == {
        "issuer": "https://github.com",
        "authorization_endpoint": "https://github.com/login/oauth/authorize",
        "token_endpoint": "https://github.com/login/oauth/access_token",
        "api": "https://api.github.com",
    }
    assert upstream.iss_parameter_required(provider) is False


@pytest.mark.parametrize("curve", ["rsa", "ec"])
def test_private_key_jwt_is_accepted(google_standin: GoogleStandIn, curve: str) -> None:
    # RFC 7523 §2.2: the stand-in verifies the assertion with the registered public key
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if curve == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    google_standin.client_public_key = key.public_key()
    provider = make_provider(
        google_standin, client_auth_method=ClientAuthMethod.PRIVATE_KEY_JWT, secret=pem
    )

    assert sign_in(provider, google_standin).subject == "110169484474386276334"
    assert len(google_standin.assertions_seen) == 1


def test_private_key_jwt_signed_by_another_key_is_refused(google_standin: GoogleStandIn) -> None:
    registered = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    google_standin.client_public_key = registered.public_key()
    provider = make_provider(
        google_standin, client_auth_method=ClientAuthMethod.PRIVATE_KEY_JWT, secret=pem
    )
    error = refused("upstream_error", lambda: sign_in(provider, google_standin))
    assert error.detail == "token: invalid_client"


def test_wrong_client_secret_is_an_upstream_error(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin, secret="not-the-secret")
    refused("upstream_error", lambda: sign_in(provider, google_standin))


def test_iss_parameter_required_follows_discovery(google_standin: GoogleStandIn) -> None:
    # RFC 9207 §3: authorization_response_iss_parameter_supported
    assert upstream.iss_parameter_required(make_provider(google_standin)) is False
    other = GoogleStandIn(client_id=google_standin.client_id).start()
    try:
        other.send_iss = True
        provider = make_provider(other)
        assert upstream.iss_parameter_required(provider) is True
        assert upstream.metadata(provider)["issuer"] == other.url
        url = upstream.authorization_url(
            provider, redirect_uri=REDIRECT_URI, state="s", nonce="n", code_verifier="v" * 43
        )
        assert other.authorize(url)["iss"] == other.url  # RFC 9207 §2: what the flow compares
    finally:
        other.stop()


def test_github_authorization_url(github_standin: GitHubStandIn) -> None:
    # OAuth 2.0, not OIDC: no nonce; PKCE S256 all the same (GitHub supports it)
    provider = make_provider(github_standin, scopes="openid email profile")
    verifier = secrets.token_urlsafe(48)
    url = upstream.authorization_url(
        provider, redirect_uri=REDIRECT_URI, state="s", nonce="n", code_verifier=verifier
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(github_standin.url + "/login/oauth/authorize?")
    assert "nonce" not in query
    assert query["code_challenge"] == s256(verifier)
    assert query["scope"] == "read:user user:email"  # the model's OIDC default means nothing here
    assert query["client_id"] == github_standin.client_id


def test_discovery_is_cached(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    sign_in(provider, google_standin)
    sign_in(provider, google_standin)
    assert google_standin.hits["discovery"] == 1
    assert google_standin.hits["jwks"] == 1


# --- failures: the network -----------------------------------------------------------------------


def test_slow_token_endpoint_times_out(google_standin: GoogleStandIn, settings: Any) -> None:
    settings.FEDERATION_TIMEOUT_SECONDS = 0.5
    provider = make_provider(google_standin)
    upstream.metadata(provider)  # discovery first, at full speed
    google_standin.faults["token"] = "slow"
    started = time.monotonic()
    error = refused("unavailable", lambda: sign_in(provider, google_standin))
    assert time.monotonic() - started < 5
    assert google_standin.hits["token"] == 1  # the code exchange is never tried again
    assert "Timeout" in error.detail


@pytest.mark.parametrize(("status", "tries"), [("502", 3), ("503", 3), ("504", 3), ("500", 1)])
def test_5xx_on_discovery_is_retried_a_bounded_number_of_times(
    google_standin: GoogleStandIn, settings: Any, status: str, tries: int
) -> None:
    # one try and FEDERATION_RETRIES more for the transient statuses; 500 is not retried
    settings.FEDERATION_RETRIES = 2
    google_standin.faults["discovery"] = status
    provider = make_provider(google_standin)
    error = refused("unavailable", lambda: upstream.metadata(provider))
    assert google_standin.hits["discovery"] == tries
    assert error.detail == f"discovery: HTTP {status}"


def test_5xx_on_the_token_endpoint_is_not_retried(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    google_standin.faults["token"] = "503"
    refused("unavailable", lambda: sign_in(provider, google_standin))
    assert google_standin.hits["token"] == 1


def test_a_provider_that_is_down_is_unavailable(settings: Any) -> None:
    standin = GoogleStandIn().start()
    provider = make_provider(standin)
    standin.stop()  # nothing listens on the port any more
    settings.FEDERATION_RETRIES = 1
    refused("unavailable", lambda: upstream.metadata(provider))


@pytest.mark.parametrize("endpoint", ["discovery", "token", "jwks", "userinfo"])
@pytest.mark.parametrize("fault", ["malformed_json", "not_object"])
def test_malformed_json_is_an_invalid_response(
    google_standin: GoogleStandIn, endpoint: str, fault: str
) -> None:
    provider = make_provider(google_standin, use_userinfo=True)
    google_standin.faults[endpoint] = fault
    refused("invalid_response", lambda: sign_in(provider, google_standin))


@pytest.mark.parametrize("endpoint", ["token", "user", "emails"])
def test_github_malformed_json_is_an_invalid_response(
    github_standin: GitHubStandIn, endpoint: str
) -> None:
    github_standin.faults[endpoint] = "malformed_json"
    provider = make_provider(github_standin)
    refused("invalid_response", lambda: sign_in(provider, github_standin))


@pytest.mark.parametrize("endpoint", ["token", "user"])
def test_github_oauth_error_answer(github_standin: GitHubStandIn, endpoint: str) -> None:
    # GitHub answers a bad code with 200 and {"error": ...}; its API a bad token with 401
    github_standin.faults[endpoint] = "oauth_error"
    code = "upstream_error" if endpoint == "token" else "invalid_response"
    error = refused(code, lambda: sign_in(make_provider(github_standin), github_standin))
    if endpoint == "token":
        assert error.detail == "token: bad_verification_code"


def test_oauth_error_from_the_token_endpoint(google_standin: GoogleStandIn) -> None:
    google_standin.faults["token"] = "oauth_error"
    error = refused(
        "upstream_error", lambda: sign_in(make_provider(google_standin), google_standin)
    )
    assert error.detail == "token: invalid_grant"


def test_a_code_is_used_once(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    verifier, nonce = secrets.token_urlsafe(48), "n"
    url = upstream.authorization_url(
        provider, redirect_uri=REDIRECT_URI, state="s", nonce=nonce, code_verifier=verifier
    )
    code = google_standin.authorize(url)["code"]
    complete = lambda: upstream.complete(  # noqa: E731
        provider, redirect_uri=REDIRECT_URI, code=code, code_verifier=verifier, nonce=nonce
    )
    assert complete().subject
    refused("upstream_error", complete)


def test_a_wrong_pkce_verifier_is_refused_upstream(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    url = upstream.authorization_url(
        provider, redirect_uri=REDIRECT_URI, state="s", nonce="n", code_verifier="a" * 43
    )
    code = google_standin.authorize(url)["code"]
    refused(
        "upstream_error",
        lambda: upstream.complete(
            provider, redirect_uri=REDIRECT_URI, code=code, code_verifier="b" * 43, nonce="n"
        ),
    )


def test_oversized_answer_is_refused_by_its_length(
    google_standin: GoogleStandIn, settings: Any
) -> None:
    settings.FEDERATION_MAX_RESPONSE_BYTES = 16_384
    google_standin.oversized_bytes = 20_000
    google_standin.faults["discovery"] = "oversized"
    error = refused("invalid_response", lambda: upstream.metadata(make_provider(google_standin)))
    assert "Content-Length" in error.detail


def test_endless_answer_is_refused_without_reading_it_all(
    google_standin: GoogleStandIn, settings: Any
) -> None:
    settings.FEDERATION_MAX_RESPONSE_BYTES = 65_536
    google_standin.faults["jwks"] = "endless"  # chunked, no length, never ends by itself
    provider = make_provider(google_standin)
    refused("invalid_response", lambda: sign_in(provider, google_standin))
    # the client hung up after about the cap, long before the stand-in's own limit (64 MiB)
    assert google_standin.sent_bytes < 16 * 1024 * 1024


def test_http_endpoint_off_loopback_is_misconfigured(
    google_standin: GoogleStandIn, settings: Any
) -> None:
    provider = make_provider(google_standin)
    settings.FEDERATION_ALLOW_LOOPBACK_HTTP = False
    refused("misconfigured", lambda: upstream.metadata(provider))
    provider.issuer = "http://example.com"
    settings.FEDERATION_ALLOW_LOOPBACK_HTTP = True
    refused("misconfigured", lambda: upstream.metadata(provider))
    assert google_standin.hits["discovery"] == 0


def test_generic_oidc_without_issuer_is_misconfigured() -> None:
    from apps.federation.models import Provider

    provider = Provider(kind=ProviderKind.OIDC, issuer="", name="Corp")
    refused("misconfigured", lambda: upstream.metadata(provider))
    google = Provider(kind=ProviderKind.GOOGLE, issuer="", name="Google")
    assert upstream.issuer_of(google) == "https://accounts.google.com"


def test_endpoint_allowed() -> None:
    assert upstream.endpoint_allowed("https://accounts.google.com")
    assert upstream.endpoint_allowed("http://127.0.0.1:8000/x")
    assert upstream.endpoint_allowed("http://[::1]:8000/x")
    assert upstream.endpoint_allowed("http://localhost/x")
    assert not upstream.endpoint_allowed("http://10.0.0.1/x")
    assert not upstream.endpoint_allowed("http://127.0.0.1.example.com/x")
    assert not upstream.endpoint_allowed("https://user:pw@example.com/x")
    assert not upstream.endpoint_allowed("ftp://example.com/x")
    assert not upstream.endpoint_allowed("https://[::1/x")


# --- failures: discovery and the ID token (OIDC Core §3.1.3.7) ------------------------------------


def test_wrong_issuer_in_discovery_is_refused(google_standin: GoogleStandIn) -> None:
    # OIDC Discovery §4.3: the document's issuer is exactly the one configured
    google_standin.faults["discovery"] = "wrong_iss"
    error = refused("invalid_response", lambda: upstream.metadata(make_provider(google_standin)))
    assert "issuer" in error.detail


@pytest.mark.parametrize(
    "fault",
    [
        "wrong_iss",
        "alg_none",
        "hs256",
        "wrong_nonce",
        "wrong_aud",
        "azp_mismatch",
        "multiple_aud",
        "expired",
        "iat_future",
    ],
)
def test_bad_id_tokens_are_refused(google_standin: GoogleStandIn, fault: str) -> None:
    google_standin.id_token_fault = fault
    refused("invalid_id_token", lambda: sign_in(make_provider(google_standin), google_standin))


def test_id_token_without_sub_is_refused(google_standin: GoogleStandIn) -> None:
    google_standin.id_token_fault = "no_sub"
    refused("invalid_id_token", lambda: sign_in(make_provider(google_standin), google_standin))


def test_accounts_google_com_without_scheme_is_only_googles() -> None:
    # Google documents both forms of its iss; nobody else's issuer gets the second form
    from apps.federation.models import Provider

    google = Provider(kind=ProviderKind.GOOGLE, issuer="https://accounts.google.com")
    oidc = Provider(kind=ProviderKind.OIDC, issuer="https://accounts.google.com")
    assert upstream._issuers(google) == ["https://accounts.google.com", "accounts.google.com"]
    assert upstream._issuers(oidc) == ["https://accounts.google.com"]


def test_unknown_kid_refetches_the_jwks_once_then_refuses(
    google_standin: GoogleStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(google_standin)
    sign_in(provider, google_standin)  # the JWKS is cached
    assert google_standin.hits["jwks"] == 1
    now = [time.monotonic() + upstream.JWKS_REFETCH_INTERVAL + 1]
    monkeypatch.setattr(cache, "_clock", lambda: now[0])

    google_standin.id_token_fault = "unknown_kid"
    refused("invalid_id_token", lambda: sign_in(provider, google_standin))
    assert google_standin.hits["jwks"] == 2  # one refetch
    for _ in range(3):  # forged kids within the minute cost the provider nothing
        refused("invalid_id_token", lambda: sign_in(provider, google_standin))
    assert google_standin.hits["jwks"] == 2


def test_rotated_key_is_found_by_one_refetch(
    google_standin: GoogleStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OIDC Core §10.1.1: the provider rotates; the new kid is fetched when first seen
    provider = make_provider(google_standin)
    sign_in(provider, google_standin)
    now = [time.monotonic() + upstream.JWKS_REFETCH_INTERVAL + 1]
    monkeypatch.setattr(cache, "_clock", lambda: now[0])
    google_standin.rotate_key(keep_old=False)

    assert sign_in(provider, google_standin).subject
    assert google_standin.hits["jwks"] == 2


def test_hosted_domain_not_allowed(google_standin: GoogleStandIn) -> None:
    # Google: check the ID token's hd, not the e-mail's domain
    provider = make_provider(google_standin, hosted_domains=["example.org"])
    google_standin.user = {**google_standin.user, "hd": "example.com"}
    refused("hosted_domain", lambda: sign_in(provider, google_standin))
    google_standin.user = {k: v for k, v in google_standin.user.items() if k != "hd"}
    refused("hosted_domain", lambda: sign_in(provider, google_standin))  # a consumer account


def test_hosted_domain_allowed(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin, hosted_domains=["example.org", "Example.com"])
    google_standin.user = {**google_standin.user, "hd": "example.com"}
    assert sign_in(provider, google_standin).claims["hd"] == "example.com"


def test_validate_id_token_refuses_garbage(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    for token in ["", "not-a-jwt", "a.b.c", "e30.e30.", "🙂"]:
        refused(
            "invalid_id_token", lambda t=token: upstream.validate_id_token(provider, t, nonce="n")
        )


def test_hs256_signed_with_the_public_key_is_refused(google_standin: GoogleStandIn) -> None:
    # RFC 8725 §2.1: the algorithm confusion attack, a public key used as an HMAC secret
    provider = make_provider(google_standin)
    kid, key = google_standin.keys[0]
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {
        "iss": google_standin.url,
        "aud": provider.client_id,
        "sub": "x",
        "iat": now,
        "exp": now + 60,
        "nonce": "n",
    }
    forged = _hs256(claims, public_pem, kid)  # PyJWT itself refuses to sign this way
    refused("invalid_id_token", lambda: upstream.validate_id_token(provider, forged, nonce="n"))


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


# --- odd answers: each an UpstreamError, never another exception ---------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000  # JSON nested past the parser's recursion limit


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ((200, {"token_type": "Bearer"}), "invalid_response"),  # no access_token
        ((200, {"access_token": 7, "token_type": "Bearer"}), "invalid_response"),
        ((200, {"access_token": "x", "token_type": "mac"}), "invalid_response"),
        ((200, {"access_token": "x", "token_type": "Bearer"}), "invalid_response"),  # no id_token
        ((200, {"access_token": "x", "token_type": "Bearer", "id_token": 5}), "invalid_response"),
        (
            (200, {"access_token": "x", "token_type": "Bearer", "id_token": "x.y.z"}),
            "invalid_id_token",
        ),
        ((200, b""), "invalid_response"),
        ((200, b"\xff\xfe"), "invalid_response"),
        ((200, DEEP), "invalid_response"),
        ((404, b"<html>not here</html>"), "invalid_response"),
        ((302, b""), "invalid_response"),
        ((429, {"message": "slow down"}), "invalid_response"),
        ((502, b"<html>bad gateway</html>"), "unavailable"),
    ],
)
def test_odd_token_answers(google_standin: GoogleStandIn, answer: Any, code: str) -> None:
    provider = make_provider(google_standin)
    google_standin.answers["token"] = answer
    refused(code, lambda: sign_in(provider, google_standin))


@pytest.mark.parametrize(
    ("endpoint", "answer", "code"),
    [
        ("discovery", (200, {"issuer": None}), "invalid_response"),
        ("discovery", (200, DEEP), "invalid_response"),
        ("jwks", (200, {"keys": "none"}), "invalid_response"),
        ("jwks", (200, {"keys": [{"kty": "RSA", "n": 5, "e": "AQAB"}]}), "invalid_id_token"),
        ("jwks", (404, {}), "invalid_response"),
        ("userinfo", (401, {"error": "invalid_token"}), "invalid_response"),
    ],
)
def test_odd_google_answers(
    google_standin: GoogleStandIn, endpoint: str, answer: Any, code: str
) -> None:
    provider = make_provider(google_standin, use_userinfo=True)
    google_standin.answers[endpoint] = answer
    refused(code, lambda: sign_in(provider, google_standin))


def test_a_jwk_that_does_not_load_is_an_invalid_response(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    jwks = google_standin.jwks()
    jwks["keys"][0]["n"] = "!!not base64!!"
    google_standin.answers["jwks"] = (200, jwks)
    refused("invalid_response", lambda: sign_in(provider, google_standin))


@pytest.mark.parametrize(
    ("endpoint", "answer"),
    [
        ("user", (200, {"login": "octocat"})),  # no id
        ("user", (200, {"id": "583231"})),  # not a number
        ("user", (200, {"id": True})),
        ("user", (200, ["x"])),
        ("emails", (200, {"email": "x"})),  # not a list
        ("emails", (401, {"message": "Bad credentials"})),
        ("token", (200, b"access_token=x&token_type=bearer")),  # form-encoded though JSON asked
    ],
)
def test_odd_github_answers(github_standin: GitHubStandIn, endpoint: str, answer: Any) -> None:
    github_standin.answers[endpoint] = answer
    refused("invalid_response", lambda: sign_in(make_provider(github_standin), github_standin))


def test_github_odd_email_entries_are_skipped(github_standin: GitHubStandIn) -> None:
    github_standin.emails = [
        "junk",
        {"email": 5, "primary": True, "verified": True},
    ]
    identity = sign_in(make_provider(github_standin), github_standin)
    assert (identity.email, identity.email_verified) == ("", False)


def test_client_secret_basic_form_encodes_the_secret(google_standin: GoogleStandIn) -> None:
    # RFC 6749 §2.3.1: id and secret are form-encoded before Basic; the stand-in decodes them
    google_standin.client_secret = "a+b/c:d%e f"
    provider = make_provider(google_standin, client_auth_method="client_secret_basic")
    assert sign_in(provider, google_standin).subject


def test_generic_oidc_kind_against_a_discovery_provider(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin, kind=ProviderKind.OIDC, name="Corp SSO")
    google_standin.user = {**google_standin.user, "preferred_username": "pat"}
    identity = sign_in(provider, google_standin)
    assert identity.display == "pat"


def test_a_code_from_another_provider_is_refused(google_standin: GoogleStandIn) -> None:
    # RFC 9700 §4.4 (mix-up): a code issued by A, redeemed at B, is refused by B
    other = GoogleStandIn(client_id=google_standin.client_id).start()
    try:
        a, b = make_provider(google_standin), make_provider(other, secret=other.client_secret)
        url = upstream.authorization_url(
            a, redirect_uri=REDIRECT_URI, state="s", nonce="n", code_verifier="v" * 43
        )
        code = google_standin.authorize(url)["code"]
        refused(
            "upstream_error",
            lambda: upstream.complete(
                b, redirect_uri=REDIRECT_URI, code=code, code_verifier="v" * 43, nonce="n"
            ),
        )
    finally:
        other.stop()


def test_a_slow_read_is_not_retried(google_standin: GoogleStandIn, settings: Any) -> None:
    # a read timeout would make the person wait again: GET retries are for connection errors
    # and 502/503/504 only
    settings.FEDERATION_TIMEOUT_SECONDS = 0.5
    settings.FEDERATION_RETRIES = 2
    google_standin.faults["discovery"] = "slow"
    refused("unavailable", lambda: upstream.metadata(make_provider(google_standin)))
    assert google_standin.hits["discovery"] == 1


def test_an_unopenable_secret_is_misconfigured(google_standin: GoogleStandIn) -> None:
    provider = make_provider(google_standin)
    provider.kek_id = "00000000"  # sealed under a key no longer configured
    refused("misconfigured", lambda: sign_in(provider, google_standin))


def test_a_private_key_that_does_not_load_is_misconfigured(google_standin: GoogleStandIn) -> None:
    provider = make_provider(
        google_standin, client_auth_method=ClientAuthMethod.PRIVATE_KEY_JWT, secret="not a key"
    )
    refused("misconfigured", lambda: sign_in(provider, google_standin))
