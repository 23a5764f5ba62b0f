"""The upstream protocol client (issue 17): what Tessera says to GitHub, Google and any OpenID
Connect provider, and what it believes of their answers.

Authlib speaks the protocol (the authorization URL with PKCE S256, RFC 7636; the code
exchange with the provider's client authentication, private_key_jwt per RFC 7523); PyJWT, the
project's JOSE library, validates ID tokens (OIDC Core §3.1.3.7). The policy is ours:

- every request is bounded (`UpstreamSession`): a timeout per connect and per read, a few
  retries of idempotent GETs after a connection error or a 502/503/504 (never of the code
  exchange: a code is used once), no redirects followed, and an answer longer than
  FEDERATION_MAX_RESPONSE_BYTES refused without reading the rest;
- endpoints are https, or http to loopback only when FEDERATION_ALLOW_LOOPBACK_HTTP;
- discovery documents and JWKS are cached per process (apps.core.cache); an ID token naming an
  unknown key refetches the JWKS once, at most once a minute per JWKS, so a forged `kid`
  cannot make us hammer the provider;
- every failure is an `UpstreamError` with a code for the federation.failed event, a sentence
  for the person and a detail for the logs (never a secret or a token). No requests, JSON or
  JWT exception leaves this module.

Mix-up (RFC 9700 §4.4): every endpoint comes from this provider's own configuration or
discovery document, the flow gives each provider its own redirect URI, and the RFC 9207 `iss`
of an authorization response is checked against `metadata()["issuer"]` by the flow
(`iss_parameter_required`).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote, urlsplit

import jwt
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings
from joserfc.jwk import ECKey, RSAKey
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from apps.core.cache import ProcessCache
from apps.core.sealing import UnsealError
from apps.federation.models import ClientAuthMethod, Provider, ProviderKind
from apps.federation.providers import (
    DEFAULT_ISSUERS,
    DEFAULT_SCOPES,
    RESERVED_EXTRA_PARAMS,
    provider_secret,
)

LEEWAY_SECONDS = 60  # clock skew allowed on exp and iat (OIDC Core §3.1.3.7 items 9-10)
DISCOVERY_MAX_AGE = 3600.0  # a discovery document is read again after an hour
JWKS_MAX_AGE = 3600.0
JWKS_REFETCH_INTERVAL = 60.0  # an unknown kid refetches a JWKS at most this often
STALE_RETRY_SECONDS = 30.0  # the provider is down when its cached document expires: keep it
MAX_SUBJECT = 255  # OIDC Core §2: `sub` is at most 255 ASCII characters
DETAIL_CHARS = 200

GITHUB_API = "https://api.github.com"  # github.com's API; GitHub Enterprise: <issuer>/api/v3
GOOGLE_ISSUER = DEFAULT_ISSUERS[ProviderKind.GOOGLE]
# Google's ID tokens carry either form ("Authenticate with a backend server": verify that iss
# is accounts.google.com or https://accounts.google.com); only for Google itself.
GOOGLE_ISSUERS = (GOOGLE_ISSUER, "accounts.google.com")

# Asymmetric algorithms only, each bound to the key type it needs: `none` and HS* are never
# taken (an HS256 token "signed" with our client secret, or with a public key read as an HMAC
# secret, proves nothing about the issuer; RFC 8725 §2.1, §3.1).
ALGORITHM_KEYS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
# Claims that only the ID token may state; userinfo cannot change them (OIDC Core §5.3.2).
ID_TOKEN_ONLY = frozenset({"iss", "aud", "azp", "exp", "iat", "nonce", "auth_time", "acr", "amr"})


@dataclass(frozen=True)
class UpstreamIdentity:
    subject: str  # OIDC sub / GitHub's numeric id as str; non-empty, at most 255 characters
    email: str  # "" when none; lower-cased
    email_verified: bool  # GitHub: the primary e-mail's `verified`; OIDC: email_verified
    name: str
    display: str  # GitHub login / preferred_username / e-mail: for pages
    claims: dict[str, Any] = field(repr=False)  # ID token + userinfo / GitHub's /user


class UpstreamError(Exception):
    """An upstream sign-in that cannot go on.

    code: federation.failed's error_code — unavailable, upstream_error, invalid_response,
    invalid_id_token, hosted_domain, misconfigured. message: one sentence for the person.
    detail: for the event and the logs; never a secret, a code or a token.
    """

    def __init__(self, code: str, message: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail or message}")
        self.code = code
        self.message = message
        self.detail = detail[:DETAIL_CHARS]


def _unavailable(provider: Provider, detail: str) -> UpstreamError:
    return UpstreamError(
        "unavailable", f"{provider.name} did not answer. Try again in a moment.", detail
    )


def _invalid_response(provider: Provider, detail: str) -> UpstreamError:
    return UpstreamError(
        "invalid_response",
        f"{provider.name} sent an answer we cannot use. Try again, or sign in another way.",
        detail,
    )


def _invalid_id_token(provider: Provider, detail: str) -> UpstreamError:
    return UpstreamError(
        "invalid_id_token",
        f"{provider.name}'s answer could not be verified. Sign in another way.",
        detail,
    )


def _misconfigured(provider: Provider, detail: str) -> UpstreamError:
    return UpstreamError(
        "misconfigured",
        f"Signing in with {provider.name} is not set up correctly. Tell your administrator.",
        detail,
    )


# --- HTTP, bounded ----------------------------------------------------------------------------


class ResponseTooLarge(requests.RequestException):
    """An upstream answer longer than FEDERATION_MAX_RESPONSE_BYTES (not read to its end)."""


class EndpointRefused(requests.RequestException):
    """A URL that is neither https nor (when allowed) http to loopback."""


class _Retry(Retry):
    """urllib3's Retry, narrowed: a GET is tried again after a connection error or a
    502/503/504; a read timeout is not (the person would wait the timeout again), and a POST
    never (the code exchange: a code is used once, RFC 6749 §4.1.2)."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        retry = self
        if (method or "").upper() != "GET" or isinstance(error, ReadTimeoutError):
            retry = self.new(total=0)  # this try was the last
        return Retry.increment(retry, method, url, response, error, _pool, _stacktrace)


def endpoint_allowed(url: str) -> bool:
    """https, or http to a loopback address when FEDERATION_ALLOW_LOOPBACK_HTTP (a provider
    tried on the operator's own machine, and the suite's stand-ins)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not settings.FEDERATION_ALLOW_LOOPBACK_HTTP:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UpstreamSession(OAuth2Session):
    """Authlib's OAuth 2.0 session, every request bounded (module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        tries = settings.FEDERATION_RETRIES
        retry = _Retry(
            total=tries,
            connect=tries,
            read=tries,
            status=tries,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=(502, 503, 504),
            backoff_factor=0.1,
            respect_retry_after_header=False,  # the upstream does not choose how long we wait
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(
        self,
        method: str,
        url: str,
        withhold_token: bool = False,
        auth: Any = None,
        **kwargs: Any,
    ) -> requests.Response:
        if not endpoint_allowed(url):
            raise EndpointRefused(f"endpoint refused: {url[:100]}")
        kwargs["timeout"] = settings.FEDERATION_TIMEOUT_SECONDS
        kwargs["stream"] = True
        kwargs["allow_redirects"] = False  # a redirect could lead to http or elsewhere
        response: requests.Response = super().request(
            method, url, withhold_token=withhold_token, auth=auth, **kwargs
        )
        _read_capped(response)
        return response


def _read_capped(response: requests.Response) -> None:
    """Read the body up to the cap; refuse a longer one without reading the rest."""
    limit = settings.FEDERATION_MAX_RESPONSE_BYTES
    length = response.headers.get("Content-Length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:  # "²".isdigit()
        response.close()
        raise ResponseTooLarge(f"Content-Length {length} over {limit}")
    body = bytearray()
    try:
        for chunk in response.iter_content(16_384):
            body += chunk
            if len(body) > limit:
                raise ResponseTooLarge(f"longer than {limit} bytes")
    except ResponseTooLarge:
        response.close()
        raise
    response._content = bytes(body)


def _session(**kwargs: Any) -> UpstreamSession:
    session = UpstreamSession(**kwargs)
    session.headers["User-Agent"] = "Tessera"
    return session


@contextmanager
def _guard(provider: Provider, step: str) -> Iterator[None]:
    """What the network and the libraries raise, as UpstreamError."""
    try:
        yield
    except UpstreamError:
        raise
    except OAuthError as error:  # an OAuth error answer (RFC 6749 §5.2)
        code = str(getattr(error, "error", "") or "error")
        raise UpstreamError(
            "upstream_error",
            f"{provider.name} refused the sign-in. Try again, or sign in another way.",
            f"{step}: {_printable(code)}",
        ) from None
    except (ResponseTooLarge, requests.exceptions.InvalidJSONError) as error:
        raise _invalid_response(provider, f"{step}: {error}") from None
    except EndpointRefused as error:
        raise _misconfigured(provider, f"{step}: {error}") from None
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        if status >= 500:
            raise _unavailable(provider, f"{step}: HTTP {status}") from None
        raise _invalid_response(provider, f"{step}: HTTP {status}") from None
    except requests.RequestException as error:  # timeouts, connection errors
        raise _unavailable(provider, f"{step}: {type(error).__name__}") from None
    except (ValueError, TypeError, KeyError, RecursionError) as error:  # a token answer not JSON
        raise _invalid_response(provider, f"{step}: {type(error).__name__}: {error}") from None


def _printable(text: str) -> str:
    return "".join(c for c in text[:DETAIL_CHARS] if c.isprintable())


def _get(provider: Provider, session: UpstreamSession, url: str, step: str, **kwargs: Any) -> Any:
    """GET url; its JSON, or UpstreamError."""
    with _guard(provider, step):
        response = session.get(url, **kwargs)
    if response.status_code >= 500:
        raise _unavailable(provider, f"{step}: HTTP {response.status_code}")
    if response.status_code != 200:
        raise _invalid_response(provider, f"{step}: HTTP {response.status_code}")
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid_response(provider, f"{step}: not JSON") from None


def _get_object(
    provider: Provider, session: UpstreamSession, url: str, step: str, **kwargs: Any
) -> dict[str, Any]:
    value = _get(provider, session, url, step, **kwargs)
    if not isinstance(value, dict):
        raise _invalid_response(provider, f"{step}: not a JSON object")
    return value


# --- metadata ---------------------------------------------------------------------------------

# Not single_flight: its lock is one per cache, so a provider that hangs would hold up every
# other provider's first read; a read per provider per hour may happen twice at once instead.
_documents: ProcessCache[dict[str, Any]] = ProcessCache(
    "federation-discovery",
    max_age=DISCOVERY_MAX_AGE,
    max_entries=256,
    stale_on=(UpstreamError,),
    stale_retry=STALE_RETRY_SECONDS,
)
_jwks: ProcessCache[dict[str, Any]] = ProcessCache(
    "federation-jwks",
    max_age=JWKS_MAX_AGE,
    max_entries=256,
    stale_on=(UpstreamError,),
    stale_retry=STALE_RETRY_SECONDS,
)


def issuer_of(provider: Provider) -> str:
    """The configured issuer; GitHub's and Google's own when left empty (a generic OIDC
    provider has none to fall back on: misconfigured)."""
    if provider.issuer:
        return provider.issuer
    return DEFAULT_ISSUERS.get(ProviderKind(provider.kind), "")


def metadata(provider: Provider) -> dict[str, Any]:
    """OIDC/Google: the discovery document (OIDC Discovery 1.0 §4), cached; GitHub: what its
    documentation states, in the same shape."""
    issuer = issuer_of(provider)
    if provider.kind == ProviderKind.GITHUB:
        base = issuer.rstrip("/")
        api = GITHUB_API if urlsplit(base).hostname == "github.com" else f"{base}/api/v3"
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{base}/login/oauth/authorize",
            "token_endpoint": f"{base}/login/oauth/access_token",
            "api": api,
        }
    if not endpoint_allowed(issuer):
        raise _misconfigured(provider, f"issuer not https: {issuer[:100]}")
    document = _documents.get(issuer, lambda _previous: _discover(provider, issuer))
    assert document is not None  # _discover returns a document or raises
    return dict(document)


def _discover(provider: Provider, issuer: str) -> dict[str, Any]:
    # OIDC Discovery 1.0 §4: the issuer with /.well-known/openid-configuration appended
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with _session() as session:
        document = _get_object(provider, session, url, "discovery", withhold_token=True)
    # §4.3: the issuer in the document is exactly the one it was read from (mix-up, §7.2)
    if document.get("issuer") != issuer:
        raise _invalid_response(
            provider, f"discovery: issuer {str(document.get('issuer'))[:100]!r} is not {issuer!r}"
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise _invalid_response(provider, f"discovery: no {name}")
        if not endpoint_allowed(value):
            raise _misconfigured(provider, f"discovery: {name} not https")
    userinfo = document.get("userinfo_endpoint")
    if userinfo is not None and (not isinstance(userinfo, str) or not endpoint_allowed(userinfo)):
        raise _misconfigured(provider, "discovery: userinfo_endpoint not https")
    return document


def iss_parameter_required(provider: Provider) -> bool:
    """The provider says it names itself in every authorization response (RFC 9207 §3), so a
    response without `iss` is refused by the flow."""
    if provider.kind == ProviderKind.GITHUB:
        return False
    return metadata(provider).get("authorization_response_iss_parameter_supported") is True


# --- the authorization request ------------------------------------------------------------------


def _scopes(provider: Provider) -> str:
    scopes = provider.scopes.split()
    if provider.kind == ProviderKind.GITHUB:
        if provider.scopes.strip() == DEFAULT_SCOPES[ProviderKind.OIDC]:
            # the model's OIDC default means nothing to GitHub: /user and /user/emails
            return DEFAULT_SCOPES[ProviderKind.GITHUB]
        return " ".join(scopes)
    if "openid" not in scopes:
        scopes.insert(0, "openid")  # OIDC Core §3.1.2.1: without it no ID token comes back
    return " ".join(scopes)


def authorization_url(
    provider: Provider,
    *,
    redirect_uri: str,
    state: str,
    nonce: str,
    code_verifier: str,
    login_hint: str = "",
) -> str:
    """Where to send the person: the code flow with PKCE S256 (RFC 7636 §4.2) always, and a
    nonce for OIDC kinds (OIDC Core §3.1.2.1)."""
    endpoint = metadata(provider)["authorization_endpoint"]
    params: dict[str, str] = {
        str(key): str(value)
        for key, value in (provider.extra_params or {}).items()
        if str(key) not in RESERVED_EXTRA_PARAMS | {"code_verifier", "url"}  # Authlib's own names
    }
    if login_hint:
        # GitHub names it `login` ("Authorizing OAuth apps": suggests an account to sign in
        # with); OIDC Core §3.1.2.1 `login_hint`.
        params["login" if provider.kind == ProviderKind.GITHUB else "login_hint"] = login_hint
    if provider.kind != ProviderKind.GITHUB:
        params["nonce"] = nonce
    if provider.kind == ProviderKind.GOOGLE and len(provider.hosted_domains) == 1:
        # Google's hd request parameter only narrows the account chooser; the ID token's hd
        # is what is checked (complete()).
        params["hd"] = str(provider.hosted_domains[0])
    with (
        _session(
            client_id=provider.client_id,
            scope=_scopes(provider),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        ) as client,
        _guard(provider, "authorization request"),
    ):
        url, _state = client.create_authorization_url(
            endpoint, state=state, code_verifier=code_verifier, **params
        )
    return str(url)


# --- the code exchange ----------------------------------------------------------------------------


def _secret(provider: Provider) -> str:
    try:
        return provider_secret(provider)
    except UnsealError as error:  # the KEK is no longer configured, or the row was altered
        raise _misconfigured(provider, f"client secret: {type(error).__name__}") from None


def _basic(client: Any, method: str, uri: str, headers: dict[str, str], body: str) -> Any:
    """client_secret_basic with the id and secret form-encoded first (RFC 6749 §2.3.1), which
    Authlib's built-in leaves out; the same for every id and secret made of URL-safe
    characters."""
    pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret or '', safe='')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return uri, headers, body


def _token_client(provider: Provider, *, redirect_uri: str, token_endpoint: str) -> UpstreamSession:
    secret = _secret(provider)
    method = provider.client_auth_method
    if method == ClientAuthMethod.PRIVATE_KEY_JWT:
        # RFC 7523 §2.2 / OIDC Core §9: a JWT signed with our private key, aud the token
        # endpoint it is sent to (so it is good only there), a fresh jti.
        try:
            key = load_pem_private_key(secret.encode(), password=None)
        except (ValueError, TypeError) as error:
            raise _misconfigured(provider, f"private key: {type(error).__name__}") from None
        if isinstance(key, rsa.RSAPrivateKey):
            signing_key: Any = RSAKey.import_key(secret)
            alg = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            signing_key = ECKey.import_key(secret)
            alg = "ES256"
        else:
            raise _misconfigured(provider, "private key: neither RSA nor EC P-256")
        client = _session(
            client_id=provider.client_id,
            client_secret=signing_key,
            token_endpoint_auth_method=ClientAuthMethod.PRIVATE_KEY_JWT.value,
            redirect_uri=redirect_uri,
        )
        client.register_client_auth_method(PrivateKeyJWT(token_endpoint, alg=alg))
        return client
    client = _session(
        client_id=provider.client_id,
        client_secret=secret,
        token_endpoint_auth_method=str(method),
        redirect_uri=redirect_uri,
    )
    if method == ClientAuthMethod.CLIENT_SECRET_BASIC:
        client.register_client_auth_method(("client_secret_basic", _basic))
    return client


def _exchange(
    provider: Provider,
    client: UpstreamSession,
    token_endpoint: str,
    *,
    redirect_uri: str,
    code: str,
    code_verifier: str,
) -> dict[str, Any]:
    """RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5)."""
    with _guard(provider, "token"):
        token = client.fetch_token(
            token_endpoint,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
        )
    answer = dict(token)
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise _invalid_response(provider, "token: no access_token")
    # RFC 6749 §7.1: only a bearer token is something we know how to use
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise _invalid_response(provider, f"token: token_type {answer.get('token_type')!r}")
    return answer


def complete(
    provider: Provider, *, redirect_uri: str, code: str, code_verifier: str, nonce: str
) -> UpstreamIdentity:
    """The code exchanged and who it says the person is; raises UpstreamError."""
    document = metadata(provider)
    token_endpoint = document["token_endpoint"]
    with _token_client(
        provider, redirect_uri=redirect_uri, token_endpoint=token_endpoint
    ) as client:
        token = _exchange(
            provider,
            client,
            token_endpoint,
            redirect_uri=redirect_uri,
            code=code,
            code_verifier=code_verifier,
        )
        if provider.kind == ProviderKind.GITHUB:
            return _github_identity(provider, client, document["api"])
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise _invalid_response(provider, "token: no id_token")
        claims = validate_id_token(provider, id_token, nonce=nonce)
        if provider.use_userinfo:
            claims = _with_userinfo(provider, client, document, claims)
        return _oidc_identity(provider, claims)


# --- ID tokens (OIDC Core §3.1.3.7) -----------------------------------------------------------


def _load_jwks(provider: Provider, uri: str) -> dict[str, Any]:
    with _session() as session:
        document = _get_object(provider, session, uri, "jwks", withhold_token=True)
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise _invalid_response(provider, "jwks: no keys")
    return {"keys": [key for key in keys if isinstance(key, dict)]}


def _find_key(jwks: dict[str, Any], kid: str | None, alg: str) -> dict[str, Any] | None:
    """The JWK the header names (OIDC Core §10.1: kid, or the one key that fits)."""
    kty, crv = ALGORITHM_KEYS[alg]
    fitting = [
        key
        for key in jwks["keys"]
        if key.get("kty") == kty
        and (crv is None or key.get("crv") == crv)
        and key.get("use", "sig") == "sig"
        and key.get("alg", alg) == alg
    ]
    if kid is not None:
        named = [key for key in fitting if key.get("kid") == kid]
        return named[0] if len(named) == 1 else None
    return fitting[0] if len(fitting) == 1 else None


def _issuers(provider: Provider) -> list[str]:
    issuer = issuer_of(provider)
    if provider.kind == ProviderKind.GOOGLE and issuer == GOOGLE_ISSUER:
        return list(GOOGLE_ISSUERS)
    return [issuer]


def validate_id_token(provider: Provider, id_token: str, *, nonce: str) -> dict[str, Any]:
    """OIDC Core §3.1.3.7, in its order; the claims, or UpstreamError("invalid_id_token")."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise _invalid_id_token(provider, "not a JWS") from None
    alg = header.get("alg")
    kid = header.get("kid")
    if not isinstance(alg, str) or alg not in ALGORITHM_KEYS:
        # §3.1.3.7 items 6-8: signed with the issuer's key; `none` and HS* are not that
        raise _invalid_id_token(provider, f"alg {str(alg)[:20]!r} refused")
    if kid is not None and not isinstance(kid, str):
        raise _invalid_id_token(provider, "kid not a string")
    uri = metadata(provider)["jwks_uri"]
    jwks = _jwks.get(uri, lambda _previous: _load_jwks(provider, uri))
    assert jwks is not None
    jwk = _find_key(jwks, kid, alg)
    if jwk is None:
        # The provider may have rotated its keys (OIDC Core §10.1.1): read the JWKS again,
        # at most once a JWKS_REFETCH_INTERVAL, so forged kids cost the provider nothing.
        jwks = _jwks.refresh(
            uri, lambda _previous: _load_jwks(provider, uri), min_interval=JWKS_REFETCH_INTERVAL
        )
        jwk = _find_key(jwks, kid, alg) if jwks is not None else None
    if jwk is None:
        raise _invalid_id_token(provider, f"no key for kid {str(kid)[:64]!r} and alg {alg}")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
        raise _invalid_response(provider, f"jwks: key {str(kid)[:64]!r}: {error}") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key,
            algorithms=[alg],
            audience=provider.client_id,  # item 3: aud contains our client_id
            issuer=_issuers(provider),  # item 2: iss exactly the issuer
            leeway=LEEWAY_SECONDS,  # items 9-10: exp, and iat not in the future
            options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_signature": True},
        )
    except jwt.PyJWTError as error:
        raise _invalid_id_token(provider, f"{type(error).__name__}: {error}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    # items 4-5: with several audiences an azp must be there, and any azp must be us
    if (len(audiences) > 1 and azp is None) or (azp is not None and azp != provider.client_id):
        raise _invalid_id_token(provider, f"azp {str(azp)[:64]!r} is not our client_id")
    sent = claims.get("nonce")
    # item 11: the nonce we sent (constant-time: it is a secret of this browser's sign-in)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise _invalid_id_token(provider, "nonce differs from the one sent")
    _check_subject(provider, claims.get("sub"), "id_token")
    if provider.kind == ProviderKind.GOOGLE and provider.hosted_domains:
        allowed = {str(domain).lower() for domain in provider.hosted_domains}
        hd = claims.get("hd")
        if not isinstance(hd, str) or hd.lower() not in allowed:
            # Google: check the hd claim, not the e-mail's domain, to restrict to a Workspace
            raise UpstreamError(
                "hosted_domain",
                f"This {provider.name} account is not one of the organisation's. Sign in with "
                "your work account.",
                f"hd {str(hd)[:100]!r} not allowed",
            )
    return claims


def _check_subject(provider: Provider, subject: object, step: str) -> str:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
        raise _invalid_response(provider, f"{step}: sub missing or over {MAX_SUBJECT} characters")
    return subject


def _with_userinfo(
    provider: Provider, client: UpstreamSession, document: dict[str, Any], claims: dict[str, Any]
) -> dict[str, Any]:
    """OIDC Core §5.3: what userinfo says, after checking it speaks of the same person
    (§5.3.2: its sub equals the ID token's, else it is not used — here: refused)."""
    endpoint = document.get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        raise _misconfigured(provider, "userinfo wanted but the provider has no endpoint")
    info = _get_object(provider, client, endpoint, "userinfo")
    if info.get("sub") != claims["sub"]:
        raise _invalid_response(provider, "userinfo: sub differs from the ID token's")
    merged = {**claims, **info}
    merged.update({name: claims[name] for name in ID_TOKEN_ONLY if name in claims})
    return merged


def _verified(value: object) -> bool:
    # A boolean per OIDC Core §5.1; some providers send the string "true".
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _email(value: object) -> str:
    if not isinstance(value, str) or "@" not in value or len(value) > 254:
        return ""
    return value.strip().lower()


def _text(value: object, limit: int = 200) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _oidc_identity(provider: Provider, claims: dict[str, Any]) -> UpstreamIdentity:
    email = _email(claims.get("email"))
    name = _text(claims.get("name"))
    return UpstreamIdentity(
        subject=claims["sub"],
        email=email,
        email_verified=bool(email) and _verified(claims.get("email_verified")),
        name=name,
        display=_text(claims.get("preferred_username")) or email or name or claims["sub"],
        claims=claims,
    )


# --- GitHub (OAuth 2.0 and its REST API) ----------------------------------------------------------


def _github_identity(provider: Provider, client: UpstreamSession, api: str) -> UpstreamIdentity:
    """GitHub's user by its numeric id (a login can be renamed and reused), and its primary
    e-mail only when GitHub says it is verified."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    user = _get_object(provider, client, f"{api}/user", "user", headers=headers)
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise _invalid_response(provider, "user: no numeric id")
    emails = _get(provider, client, f"{api}/user/emails", "emails", headers=headers)
    if not isinstance(emails, list):
        raise _invalid_response(provider, "emails: not a list")
    primary = next(
        (entry for entry in emails if isinstance(entry, dict) and entry.get("primary") is True),
        None,
    )
    email = ""
    if primary is not None and primary.get("verified") is True:
        email = _email(primary.get("email"))
    login = _text(user.get("login"))
    name = _text(user.get("name"))
    return UpstreamIdentity(
        subject=str(user_id),
        email=email,
        email_verified=bool(email),
        name=name,
        display=login or name or str(user_id),
        claims=user,
    )
