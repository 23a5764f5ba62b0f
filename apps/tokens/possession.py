"""What a request proves possession of, for the one road of sender-constrained tokens
(binding.py): a DPoP proof's key (RFC 9449, dpop.py) and, added by the mutual-TLS half, the
client certificate of the connection (RFC 8705, mtls.py).

- The token endpoint (grants/__init__.py) calls token_endpoint_binding() once the client is
  authenticated; the tokens it issues are bound to the answer (TokenRequest.binding).
- A resource (userinfo, the admin API, any Python resource server) calls
  resource_binding(request, token) and hands the answer to
  validation.validate_access_token(token, presented=...): a bound token whose key or
  certificate the request does not prove is invalid_token.
"""

from __future__ import annotations

from django.http import HttpRequest

from apps.tokens import dpop, mtls
from apps.tokens.binding import Binding
from apps.tokens.grants.base import Refused
from apps.tokens.models import Client

DPOP_SCHEME = "dpop"  # RFC 9449 §7.1: Authorization: DPoP <token>


def token_endpoint_binding(request: HttpRequest, client: Client) -> Binding:
    """What a token request of the authenticated `client` proves: the client certificate of
    a mutual-TLS request (RFC 8705 §3) and a DPoP proof of the token endpoint (RFC 9449 §5).
    Raises Refused (RFC 6749 §5.2 shape with RFC 9449's errors)."""
    return Binding(
        x5t_s256=_proven_thumbprint(request, client),
        jkt=proven_jkt(request, required=client.dpop_bound_access_tokens),
    )


def _proven_thumbprint(request: HttpRequest, client: Client) -> str:
    """RFC 8705 §3: the presented certificate's thumbprint when the request came over mutual
    TLS with one, "" otherwise. A client registered with
    tls_client_certificate_bound_access_tokens (§3.4) must present one: invalid_request."""
    x5t = mtls.presented_thumbprint(request)
    if not x5t and client.tls_client_certificate_bound_access_tokens:
        raise Refused("invalid_request", mtls.BOUND_TOKENS_REQUIRED)
    return x5t


def proven_jkt(request: HttpRequest, *, required: bool) -> str:
    """The thumbprint of the key a DPoP proof of this endpoint (token, PAR) proves, "" when
    the request sent none and none is `required` (RFC 9449 §5.2 dpop_bound_access_tokens).
    Raises Refused: invalid_dpop_proof, use_dpop_nonce (with the DPoP-Nonce header, added
    by dpop_nonce_header), or 503 while the replay cache is unreachable (fail closed)."""
    try:
        proof = dpop.proof_header(request)
        if proof is None:
            if required:
                raise Refused(
                    "invalid_request",
                    "This client's tokens are DPoP-bound: send a DPoP proof (RFC 9449).",
                )
            return ""
        return dpop.verify(request, proof, nonce=dpop.nonce_required()).jkt
    except dpop.InvalidProof as invalid:  # and UseNonce, its kind
        raise Refused(invalid.error, str(invalid)) from None
    except dpop.ReplayCacheUnavailable as unavailable:
        raise Refused("temporarily_unavailable", str(unavailable), status=503) from None


def dpop_nonce_header(request: HttpRequest) -> str | None:
    """The DPoP-Nonce to send with the answer to a request that carried a DPoP proof, when
    nonces are required (RFC 9449 §8.2: a new nonce may come with any answer)."""
    if dpop.nonce_required() and "HTTP_DPOP" in request.META:
        return dpop.current_nonce()
    return None


def uses_dpop_scheme(request: HttpRequest) -> bool:
    """Whether the access token came as `Authorization: DPoP <token>` (RFC 9449 section 7.1)."""
    return request.headers.get("Authorization", "").partition(" ")[0].lower() == DPOP_SCHEME


def resource_binding(request: HttpRequest, token: str, *, nonce: bool | None = None) -> Binding:
    """What a resource request presenting `token` proves: the certificate of a mutual-TLS
    connection (RFC 8705 §3), whatever the scheme, and, with `Authorization: DPoP`, the
    DPoP proof (RFC 9449 §7.1, with `ath` of the token and, when required, a nonce: §9) must
    be valid, and its key is proven; with Bearer (or the token in the body) no key is proven,
    whatever DPoP header came (§7.2: a DPoP-bound token sent as Bearer is refused).
    `nonce`: whether the proof must carry a server nonce; default settings.DPOP_NONCE_REQUIRED
    (a resource that demands one must send DPoP-Nonce with its answers: dpop_nonce_header).

    Raises dpop.InvalidProof / dpop.UseNonce (401 with `WWW-Authenticate: DPoP
    error="invalid_dpop_proof"` / `"use_dpop_nonce"` and a DPoP-Nonce header) and
    dpop.ReplayCacheUnavailable (503). A Python resource server calls it as userinfo does:

        presented = possession.resource_binding(request, token)
        claims = validation.validate_access_token(token, audience=..., presented=presented)
    """
    x5t = mtls.presented_thumbprint(request)  # RFC 8705 §3: the connection's certificate
    if not uses_dpop_scheme(request):
        return Binding(x5t_s256=x5t)
    proof = dpop.proof_header(request)
    if proof is None:
        raise dpop.InvalidProof("Authorization: DPoP needs a DPoP proof (RFC 9449 section 7.1).")
    if nonce is None:
        nonce = dpop.nonce_required()
    return Binding(
        x5t_s256=x5t, jkt=dpop.verify(request, proof, access_token=token, nonce=nonce).jkt
    )
