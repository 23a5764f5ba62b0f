"""Stand-ins for GitHub and Google: third parties on the internet, served by the suite on
loopback and speaking their real protocols over HTTP, so the upstream client runs exactly as
in production (issue 17; DESIGN.md: a stand-in only for a third party).

    standin = GoogleStandIn().start()       # or the fixtures github_standin / google_standin
    standin.url                             # its issuer: http://127.0.0.1:<port>
    standin.client_id, standin.client_secret
    standin.user = {...}                    # who signs in next (Google: ID token claims;
    standin.emails = [...]                  #   GitHub: the /user JSON and /user/emails list)
    params = standin.authorize(url)         # follow an authorization URL: {"code", "state", ...}
    standin.faults["token"] = "503"         # misbehave at one endpoint (FAULTS)
    standin.answers["user"] = (200, {...})  # or answer exactly this (bytes: as they are)
    standin.id_token_fault = "alg_none"     # Google: a bad ID token (ID_TOKEN_FAULTS)
    standin.hits["jwks"]                    # requests each endpoint has received
    standin.stop()

The authorize endpoint approves at once (no login page): it checks client_id, the redirect
URI (`redirect_uris`, when set), PKCE S256 and the scope, remembers them with the code and
redirects with code, state and — when `send_iss` — the RFC 9207 `iss` (`response_iss` to send
another one, for mix-up tests; `authorize_error` to answer with an error instead). The token
endpoint checks the client's authentication (client_secret_basic with RFC 6749 §2.3.1's
form-encoding, client_secret_post, or private_key_jwt verified with `client_public_key` when
that is set: RFC 7523 §3), the code (used once), the redirect URI and the PKCE verifier
(RFC 7636 §4.6).

Who signs in (user, emails) is taken when the code is issued; a fault applies when the
request it names arrives. Endpoint names: authorize, token, discovery, jwks, userinfo (Google),
user, emails (GitHub).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import free_port

# At one endpoint: slow (answers only after `release` is set or 30 s: beyond any timeout a test
# sets), 500, 502, 503, 504, malformed_json, not_object (a JSON array), oversized (a body of
# `oversized_bytes` with its Content-Length), endless (a chunked body that never ends until the
# client hangs up; `sent_bytes` says how much went out), oauth_error (an OAuth error answer),
# wrong_iss (discovery: another issuer in the document).
FAULTS = frozenset(
    {
        "slow",
        "500",
        "502",
        "503",
        "504",
        "malformed_json",
        "not_object",
        "oversized",
        "endless",
        "oauth_error",
        "wrong_iss",
    }
)
# Google's next ID token: signed by a key not in the JWKS, alg none, HS256 with the client
# secret, another nonce, another aud, an azp not ours, two audiences and no azp, expired,
# issued in the future, another iss, no sub.
ID_TOKEN_FAULTS = frozenset(
    {
        "unknown_kid",
        "alg_none",
        "hs256",
        "wrong_nonce",
        "wrong_aud",
        "azp_mismatch",
        "multiple_aud",
        "expired",
        "iat_future",
        "wrong_iss",
        "no_sub",
    }
)
ENDLESS_LIMIT = 64 * 1024 * 1024  # an "endless" body stops here if nobody hangs up
SLOW_LIMIT = 30.0
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    nonce: str
    user: dict[str, Any]
    emails: list[dict[str, Any]] = field(default_factory=list)


class Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


class StandIn(ABC):
    """One HTTP server on a free loopback port, in a daemon thread."""

    name = ""
    routes: ClassVar[dict[tuple[str, str], str]] = {}  # (method, path) -> endpoint name

    def __init__(self, *, client_id: str = "tessera-client", client_secret: str = "") -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.client_public_key: Any = None  # set: private_key_jwt required, verified with it
        self.redirect_uris: list[str] = []  # empty: any redirect URI is taken
        self.require_pkce = True
        self.send_iss = False  # RFC 9207: iss in the authorization response
        self.response_iss: str | None = None  # send this iss instead of our own
        self.authorize_error = ""  # e.g. "access_denied": the authorize endpoint refuses
        self.faults: dict[str, str] = {}
        # endpoint -> (status, body): answer exactly this (bytes as they are, else as JSON)
        self.answers: dict[str, tuple[int, Any]] = {}
        self.oversized_bytes = 2 * 1024 * 1024
        self.hits: Counter[str] = Counter()
        self.sent_bytes = 0
        self.release = threading.Event()  # ends a "slow" answer's wait
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, Grant] = {}
        self.assertions_seen: set[str] = set()
        self.token_requests: list[dict[str, str]] = []  # each token request's form (no secrets)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # --- life -------------------------------------------------------------------------------

    def start(self) -> Self:
        self.port = free_port()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.daemon_threads = True
        server.standin = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(
            target=server.serve_forever, name=f"standin-{self.name}", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    @abstractmethod
    def token_endpoint(self) -> str: ...

    def authorize(self, url: str) -> dict[str, str]:
        """Follow an authorization URL as a browser would, without following the redirect:
        the callback's parameters (code, state, iss / error)."""
        response = requests.get(url, allow_redirects=False, timeout=10)
        assert response.status_code == 302, (response.status_code, response.text)
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        return {name: values[0] for name, values in query.items()}

    # --- the protocol -------------------------------------------------------------------------

    def handle_authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        # RFC 6749 §4.1.2.1: a bad client or redirect URI is told to the person, not redirected
        if client_id != self.client_id:
            return 400, {}, b"unknown client_id"
        if not redirect_uri or (self.redirect_uris and redirect_uri not in self.redirect_uris):
            return 400, {}, b"redirect_uri not registered"
        params = {"state": query.get("state", "")}
        if self.send_iss or self.response_iss is not None:
            params["iss"] = self.response_iss if self.response_iss is not None else self.url
        error = self.authorize_error or self.check_authorize(query)
        if error:
            params["error"] = error
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self.codes[code] = Grant(
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    code_challenge=query.get("code_challenge", ""),
                    scope=query.get("scope", ""),
                    nonce=query.get("nonce", ""),
                    user=copy.deepcopy(self.user_now()),
                    emails=copy.deepcopy(self.emails_now()),
                )
            params["code"] = code
        separator = "&" if "?" in redirect_uri else "?"
        return 302, {"Location": redirect_uri + separator + urlencode(params)}, b""

    def check_authorize(self, query: dict[str, str]) -> str:
        if query.get("response_type") != "code":
            return "unsupported_response_type"
        if self.require_pkce or "code_challenge" in query:
            challenge = query.get("code_challenge", "")
            if query.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
                return "invalid_request"
        return ""

    @abstractmethod
    def user_now(self) -> dict[str, Any]: ...

    def emails_now(self) -> list[dict[str, Any]]:
        return []

    def client_authenticated(self, headers: Any, form: dict[str, str]) -> str:
        """The authenticated client_id, or Refused(invalid_client)."""
        invalid = Refused(401, {"error": "invalid_client"})
        if self.client_public_key is not None:
            # RFC 7523 §3: iss = sub = client_id, aud = this token endpoint, exp, jti once
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise invalid
            try:
                claims = jwt.decode(
                    form.get("client_assertion", ""),
                    self.client_public_key,
                    algorithms=["RS256", "ES256"],
                    audience=self.token_endpoint,
                    issuer=self.client_id,
                    options={"require": ["iss", "sub", "aud", "exp", "jti"]},
                )
            except jwt.PyJWTError:
                raise invalid from None
            with self._lock:
                if claims["sub"] != self.client_id or claims["jti"] in self.assertions_seen:
                    raise invalid
                self.assertions_seen.add(claims["jti"])
            return self.client_id
        header = headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                pair = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                raise invalid from None
            client_id, _, secret = pair.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 §2.3.1
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id != self.client_id or not hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        ):
            raise invalid
        return client_id

    def redeem(self, headers: Any, form: dict[str, str]) -> tuple[str, Grant]:
        """RFC 6749 §4.1.3 and RFC 7636 §4.6: (access token, grant), or Refused."""
        with self._lock:
            self.token_requests.append(
                {k: v for k, v in form.items() if k not in {"client_secret", "code_verifier"}}
            )
        client_id = self.client_authenticated(headers, form)
        if form.get("grant_type") != "authorization_code":
            raise Refused(400, {"error": "unsupported_grant_type"})
        with self._lock:
            grant = self.codes.pop(form.get("code", ""), None)  # a code is used once
        if grant is None or grant.client_id != client_id:
            raise Refused(400, {"error": "invalid_grant", "error_description": "bad code"})
        if form.get("redirect_uri") != grant.redirect_uri:
            raise Refused(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
        verifier = form.get("code_verifier", "")
        if grant.code_challenge and not hmac.compare_digest(s256(verifier), grant.code_challenge):
            raise Refused(400, {"error": "invalid_grant", "error_description": "PKCE"})
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self.tokens[access_token] = grant
        return access_token, grant

    def bearer(self, headers: Any) -> Grant | None:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in {"bearer", "token"}:
            return None
        with self._lock:
            return self.tokens.get(token)

    @abstractmethod
    def answer(
        self, endpoint: str, method: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]: ...

    def oauth_error_answer(self, endpoint: str) -> tuple[int, dict[str, Any]]:
        if endpoint == "token":
            return 400, {"error": "invalid_grant", "error_description": "refused on purpose"}
        return 401, {"error": "invalid_token"}


def _json(status: int, value: Any, extra: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/json", **(extra or {})}
    return status, headers, json.dumps(value).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:
            return  # the client hung up on a kept-alive connection

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        standin: StandIn = self.server.standin
        parts = urlsplit(self.path)
        endpoint = standin.routes.get((method, parts.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if endpoint is None:
            self._send(*_json(404, {"message": "Not Found"}))
            return
        with standin._lock:
            standin.hits[endpoint] += 1
        fault = standin.faults.get(endpoint, "")
        try:
            if endpoint in standin.answers:
                status, value = standin.answers[endpoint]
                raw = value if isinstance(value, bytes) else json.dumps(value).encode()
                self._send(status, {"Content-Type": "application/json"}, raw)
                return
            if fault == "slow":
                standin.release.wait(SLOW_LIMIT)
            elif fault in {"500", "502", "503", "504"}:
                self._send(*_json(int(fault), {"error": "server_error"}))
                return
            elif fault == "malformed_json":
                self._send(200, {"Content-Type": "application/json"}, b'{"access_token": "x", ')
                return
            elif fault == "not_object":
                self._send(*_json(200, ["not", "an", "object"]))
                return
            elif fault == "oversized":
                pad = b"x" * standin.oversized_bytes
                self._send(200, {"Content-Type": "application/json"}, b'{"pad": "' + pad + b'"}')
                return
            elif fault == "endless":
                self._endless(standin)
                return
            elif fault == "oauth_error":
                self._send(*_json(*standin.oauth_error_answer(endpoint)))
                return
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self._send(*standin.answer(endpoint, method, query, self.headers, body))
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (a timeout, a refused oversized answer)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, standin: StandIn) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b'{"pad": "' + b"x" * 65_536
        while standin.sent_bytes < ENDLESS_LIMIT and not standin.release.is_set():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            standin.sent_bytes += len(chunk)
            chunk = b"x" * 65_536
        self.close_connection = True


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


# --- GitHub -----------------------------------------------------------------------------------


class GitHubStandIn(StandIn):
    """github.com's OAuth web flow and REST API, as GitHub Enterprise Server lays them out
    (API under <host>/api/v3, which is where the client looks for any host but github.com)."""

    name = "github"
    routes: ClassVar[dict[tuple[str, str], str]] = {
        ("GET", "/login/oauth/authorize"): "authorize",
        ("POST", "/login/oauth/access_token"): "token",
        ("GET", "/api/v3/user"): "user",
        ("GET", "/api/v3/user/emails"): "emails",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user: dict[str, Any] = {
            "login": "octocat",
            "id": 583231,
            "name": "The Octocat",
            "email": None,
            "type": "User",
        }
        self.emails: list[dict[str, Any]] = [
            {
                "email": "octocat@example.com",
                "primary": True,
                "verified": True,
                "visibility": "private",
            },
        ]

    @property
    def token_endpoint(self) -> str:
        return self.url + "/login/oauth/access_token"

    def user_now(self) -> dict[str, Any]:
        return self.user

    def emails_now(self) -> list[dict[str, Any]]:
        return self.emails

    def oauth_error_answer(self, endpoint: str) -> tuple[int, dict[str, Any]]:
        if endpoint == "token":  # GitHub answers its token errors with 200
            return 200, {"error": "bad_verification_code", "error_description": "on purpose"}
        return 401, {"message": "Bad credentials"}

    def answer(
        self, endpoint: str, method: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if endpoint == "authorize":
            return self.handle_authorize(query)
        if endpoint == "token":
            as_json = "application/json" in headers.get("Accept", "")
            try:
                access_token, grant = self.redeem(headers, _form(body))
                value: dict[str, Any] = {
                    "access_token": access_token,
                    "token_type": "bearer",
                    "scope": ",".join(grant.scope.split()),
                }
            except Refused as refused:
                value = refused.body  # GitHub: the error with 200
            if as_json:
                return _json(200, value)
            return (
                200,
                {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(value).encode(),
            )
        grant = self.bearer(headers)
        if grant is None:
            return _json(401, {"message": "Bad credentials"})
        if endpoint == "user":
            return _json(200, grant.user)
        return _json(200, grant.emails)


# --- Google -----------------------------------------------------------------------------------


class GoogleStandIn(StandIn):
    """accounts.google.com's OpenID Connect: discovery, JWKS, RS256 ID tokens, userinfo."""

    name = "google"
    routes: ClassVar[dict[tuple[str, str], str]] = {
        ("GET", "/.well-known/openid-configuration"): "discovery",
        ("GET", "/o/oauth2/v2/auth"): "authorize",
        ("POST", "/token"): "token",
        ("GET", "/jwks"): "jwks",
        ("GET", "/v1/userinfo"): "userinfo",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user: dict[str, Any] = {
            "sub": "110169484474386276334",
            "email": "pat@example.com",
            "email_verified": True,
            "name": "Pat Example",
            "given_name": "Pat",
            "family_name": "Example",
        }
        self.userinfo_overrides: dict[str, Any] = {}  # e.g. {"sub": "someone else"}
        self.id_token_fault = ""
        self.keys: list[tuple[str, rsa.RSAPrivateKey]] = []  # (kid, key); the first signs
        self.rotate_key()

    def rotate_key(self, *, keep_old: bool = True) -> str:
        """A new signing key, published in the JWKS (beside the old ones when keep_old)."""
        kid = f"k{len(self.keys) + 1}-{secrets.token_hex(4)}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = [(kid, key), *(self.keys if keep_old else [])]
        return kid

    @property
    def token_endpoint(self) -> str:
        return self.url + "/token"

    def user_now(self) -> dict[str, Any]:
        return self.user

    def discovery(self) -> dict[str, Any]:
        issuer = (
            self.url
            if self.faults.get("discovery") != "wrong_iss"
            else ("https://accounts.google.com")
        )
        return {
            "issuer": issuer,
            "authorization_endpoint": self.url + "/o/oauth2/v2/auth",
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": self.url + "/v1/userinfo",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
                "private_key_jwt",
            ],
            "code_challenge_methods_supported": ["plain", "S256"],
            "claims_supported": [
                "aud",
                "email",
                "email_verified",
                "exp",
                "iat",
                "iss",
                "name",
                "sub",
                "hd",
                "nonce",
            ],
            "authorization_response_iss_parameter_supported": self.send_iss,
        }

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def check_authorize(self, query: dict[str, str]) -> str:
        if "openid" not in query.get("scope", "").split():
            return "invalid_scope"
        return super().check_authorize(query)

    def id_token(self, grant: Grant, access_token: str) -> str:
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "iss": self.url,
            "azp": self.client_id,
            "aud": self.client_id,
            **grant.user,
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
            "iat": now,
            "exp": now + 3600,
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        fault = self.id_token_fault
        kid, key = self.keys[0]
        if fault == "wrong_nonce":
            claims["nonce"] = secrets.token_urlsafe(16)
        elif fault == "wrong_aud":
            claims["aud"] = "someone-else"
            claims["azp"] = "someone-else"
        elif fault == "azp_mismatch":
            claims["aud"] = [self.client_id, "someone-else"]
            claims["azp"] = "someone-else"
        elif fault == "multiple_aud":
            claims["aud"] = [self.client_id, "someone-else"]
            del claims["azp"]
        elif fault == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif fault == "iat_future":
            claims["iat"] = now + 3600
            claims["exp"] = now + 7200
        elif fault == "wrong_iss":
            claims["iss"] = "https://accounts.google.com"
        elif fault == "no_sub":
            claims.pop("sub", None)
        elif fault == "alg_none":
            header = {"alg": "none", "typ": "JWT", "kid": kid}
            return f"{_b64json(header)}.{_b64json(claims)}."
        elif fault == "hs256":
            # "signed" with the client secret, which the client knows: proves nothing (RFC 8725)
            return jwt.encode(claims, self.client_secret, algorithm="HS256", headers={"kid": kid})
        elif fault == "unknown_kid":
            kid, key = "unpublished", rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def answer(
        self, endpoint: str, method: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if endpoint == "discovery":
            return _json(200, self.discovery())
        if endpoint == "jwks":
            return _json(200, self.jwks())
        if endpoint == "authorize":
            return self.handle_authorize(query)
        if endpoint == "token":
            try:
                access_token, grant = self.redeem(headers, _form(body))
            except Refused as refused:
                return _json(refused.status, refused.body, {"Cache-Control": "no-store"})
            return _json(
                200,
                {
                    "access_token": access_token,
                    "expires_in": 3599,
                    "token_type": "Bearer",
                    "scope": grant.scope,
                    "id_token": self.id_token(grant, access_token),
                },
                {"Cache-Control": "no-store"},
            )
        grant = self.bearer(headers)
        if grant is None:
            return _json(401, {"error": "invalid_token"})
        info = {
            k: v
            for k, v in grant.user.items()
            if k
            in {
                "sub",
                "email",
                "email_verified",
                "name",
                "given_name",
                "family_name",
                "picture",
                "hd",
                "locale",
            }
        }
        return _json(200, {**info, **self.userinfo_overrides})


def _b64json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_provider(standin: StandIn, **fields: Any) -> Any:
    """A Provider row for a stand-in, its secret sealed as apps.federation.providers seals it
    (the row and the stand-in agree on client_id and secret). `secret` overrides the sealed
    value (a PEM private key for private_key_jwt)."""
    from apps.core.sealing import seal
    from apps.federation.models import Provider, ProviderKind

    secret = fields.pop("secret", standin.client_secret)
    kind = ProviderKind.GITHUB if isinstance(standin, GitHubStandIn) else ProviderKind.GOOGLE
    values: dict[str, Any] = {
        "slug": f"{standin.name}-{secrets.token_hex(3)}",
        "name": "GitHub" if kind == ProviderKind.GITHUB else "Google",
        "kind": kind,
        "issuer": standin.url,
        "client_id": standin.client_id,
        "scopes": "read:user user:email" if kind == ProviderKind.GITHUB else "openid email profile",
        **fields,
    }
    provider = Provider(**values)
    provider.sealed_secret, provider.kek_id = seal(
        secret.encode(), aad=b"federation-provider:" + str(provider.pk).encode()
    )
    provider.save()
    return provider
