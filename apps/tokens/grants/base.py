"""What every grant handler shares: the parsed token request, client authentication, the
refusal every check raises, and the audience (RFC 8707). Issuance is in grants/issue.py."""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.http import HttpRequest, QueryDict

from apps.ratelimit import services as ratelimit
from apps.tokens import clients, mtls
from apps.tokens.binding import UNBOUND, Binding
from apps.tokens.errors import safe
from apps.tokens.models import Client
from apps.tokens.resources import TargetRefused, token_audience

# RFC 6749 §3.2: request parameters MUST NOT be included more than once (resource may:
# RFC 8707 §2 names one resource per parameter).
SINGLE_PARAMS = (
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope",
    "client_id", "client_secret",
)  # fmt: skip
# Our codes and refresh tokens are 43 characters, redirect URIs at most 2,000: a value far
# longer is hostile and is refused before it reaches a lookup.
MAX_PARAM_LENGTH = 4096
_CREDENTIALS = ("client_id", "client_secret")


class Refused(Exception):
    """An RFC 6749 §5.2 error answer: the first check that fails raises it."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def refusal_body(refused: Refused) -> dict[str, str]:
    """The RFC 6749 §5.2 error body: a description never reflects raw input (errors.safe)."""
    return {"error": refused.error, "error_description": safe(refused.description)}


def invalid_grant(description: str) -> Refused:
    """RFC 6749 §5.2 invalid_grant, saying which of its causes it is."""
    return Refused("invalid_grant", description)


@dataclass(frozen=True)
class TokenRequest:
    http: HttpRequest
    params: QueryDict
    client: Client
    # What the request proves possession of (binding.py): the tokens issued are bound to it.
    binding: Binding = UNBOUND

    def get(self, name: str) -> str | None:
        return self.params.get(name)


def check_params(params: QueryDict) -> None:
    """RFC 6749 §3.2 and §5.2 invalid_request: no repeated parameter, no NUL character, no
    value longer than MAX_PARAM_LENGTH."""
    for name in SINGLE_PARAMS:
        if len(params.getlist(name)) > 1:
            raise Refused("invalid_request", f"The {name} parameter is repeated.")
    for name, values in params.lists():
        for value in values:
            if "\x00" in value:
                raise Refused("invalid_request", f"The {name} parameter contains a NUL character.")
            # An over-long client_id is a failed client authentication, recorded as one.
            if len(value) > MAX_PARAM_LENGTH and name not in _CREDENTIALS:
                raise Refused("invalid_request", f"The {name} parameter is too long.")


def require(params: QueryDict, *names: str) -> None:
    for name in names:
        if not params.get(name):
            raise Refused("invalid_request", f"The {name} parameter is missing.")


def authenticated_client(request: HttpRequest, params: QueryDict, *, public: bool) -> Client:
    """RFC 6749 §2.3.1 / §3.2.1: a confidential client proves itself with its secret (HTTP
    Basic, or client_id and client_secret in the body, never both), or, registered for it,
    with its mutual-TLS certificate and client_id in the body (RFC 8705 §2); a public client
    names itself with client_id alone, for a grant that allows `public` clients. Anything
    else is 401 invalid_client, recorded."""
    authorization = request.headers.get("Authorization", "")
    credentials = clients.presented(
        authorization, params.get("client_id"), params.get("client_secret")
    )
    if "\x00" in credentials.client_id or "\x00" in (credentials.secret or ""):
        raise Refused("invalid_request", "The client credentials contain a NUL character.")
    if credentials.method == "client_secret_basic" and "client_secret" in params:
        # RFC 6749 §2.3: one authentication method per request
        raise Refused("invalid_request", "Send the client secret one way only: Basic or body.")
    attempt = None
    if credentials.secret is not None:
        # Issue 12: the secret is checked only once an attempt is reserved for this client id
        # (existing or not), together with this endpoint's rate limits, in one Redis round
        # trip; a locked client id answers 429 whether its secret is right or wrong.
        attempt = ratelimit.attempt_begin(
            request, kind="client", identifier=credentials.client_id,
            client_id=credentials.client_id,
        )  # fmt: skip
        if not attempt.allowed:
            raise ratelimit.Limited(attempt.decision)
        client = clients.authenticate_presented(credentials)
        if client is not None and mtls.uses_certificate(client):
            client = None  # RFC 8705 §2: its certificate is its one credential, never a secret
    else:
        decision = ratelimit.check(request, client_id=credentials.client_id)
        if not decision.allowed:
            raise ratelimit.Limited(decision)
        client = clients.client_by_id(credentials.client_id) if credentials.client_id else None
        if client is not None and mtls.uses_certificate(client):
            # RFC 8705 §2: the certificate is checked once an attempt is reserved, as a
            # secret is (the lockout counters alone: the limits were checked just above).
            attempt = ratelimit.attempt_begin(
                request, kind="client", identifier=credentials.client_id
            )
            if not attempt.allowed:
                raise ratelimit.Limited(attempt.decision)
            credentials = replace(credentials, method=client.token_endpoint_auth_method)
            if not mtls.certificate_authenticates(request, client):
                client = None
        elif client is not None and (not public or client.client_type != Client.CLIENT_PUBLIC):
            client = None  # a confidential client must authenticate
    named = params.get("client_id")
    if client is not None and named and named != client.client_id:
        client = None  # the body names another client than the one authenticated
    if attempt is not None:
        attempt.succeeded() if client is not None else attempt.failed()
    if client is None:
        clients.authentication_failed(credentials, endpoint=request.path)
        raise Refused("invalid_client", clients.AUTHENTICATION_FAILED, status=401)
    return client


def audience(params: QueryDict, client: Client) -> list[str]:
    """RFC 8707 §2: each resource an absolute URI without a fragment that the client is
    registered for (ASVS 9.2.4, apps/tokens/resources.py), else invalid_target; the token's
    audience is the resources named, or the default audience."""
    try:
        return token_audience(params.getlist("resource"), client=client)
    except TargetRefused as refused:
        raise Refused("invalid_target", str(refused)) from None
