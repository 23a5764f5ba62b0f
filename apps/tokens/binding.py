"""Sender-constrained tokens, one road for both kinds: certificate-bound (RFC 8705 §3) and
DPoP-bound (RFC 9449 §6).

- At the token endpoint, grants/__init__.py asks `token_binding()` what the request proves
  possession of (the client certificate of a mutual-TLS connection, a DPoP proof's key) and
  whether the client must prove it; the answer travels on the TokenRequest to issuance.
- Issuance (grants/issue.py) writes it as the access token's `cnf` claim, and on a public
  client's refresh token row, whose next use must prove the same (refresh_token.py).
- A resource (userinfo, the admin API, any Python resource server) hands
  validation.validate_access_token() the Binding its own request proves; a token whose `cnf`
  that does not match is invalid_token (RFC 8705 §3, RFC 9449 §7). Introspection checks
  nothing and reports `cnf` for the resource server that asked (RFC 8705 §3.2, RFC 9449
  §6.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

X5T_S256 = "x5t#S256"  # RFC 8705 §3.1 confirmation method
JKT = "jkt"  # RFC 9449 §6.1 confirmation method


@dataclass(frozen=True)
class Binding:
    """What a token is bound to, or what a request proves possession of: the base64url
    SHA-256 of a client certificate's DER (RFC 8705 §3.1) and the RFC 7638 SHA-256 thumbprint
    of a DPoP key (RFC 9449 §6.1). Empty strings: nothing."""

    x5t_s256: str = ""
    jkt: str = ""

    def cnf(self) -> dict[str, str]:
        """The RFC 7800 `cnf` claim's members; {} for an unbound token."""
        cnf = {}
        if self.x5t_s256:
            cnf[X5T_S256] = self.x5t_s256
        if self.jkt:
            cnf[JKT] = self.jkt
        return cnf

    @property
    def token_type(self) -> str:
        """RFC 9449 §5: a DPoP-bound access token is of type DPoP; a certificate-bound one
        stays Bearer (RFC 8705 §3)."""
        return "DPoP" if self.jkt else "Bearer"

    @classmethod
    def of_claims(cls, claims: dict[str, Any]) -> Binding:
        """The binding an access token's claims state; malformed `cnf` members bind to a value
        nothing can present (never to nothing)."""
        cnf = claims.get("cnf")
        if cnf is None:
            return UNBOUND
        if not isinstance(cnf, dict):
            return UNPRESENTABLE
        x5t, jkt = cnf.get(X5T_S256, ""), cnf.get(JKT, "")
        if not isinstance(x5t, str) or not isinstance(jkt, str) or not (x5t or jkt):
            return UNPRESENTABLE
        return cls(x5t_s256=x5t, jkt=jkt)


UNBOUND = Binding()
# No request can prove this (thumbprints are base64url, never "!").
UNPRESENTABLE = Binding(x5t_s256="!", jkt="!")


def mismatch(bound: Binding, presented: Binding) -> str:
    """Why a request proving `presented` may not use a token bound to `bound`; "" when it
    may. Each member the token names must be proven, exactly (RFC 8705 §3, RFC 9449 §7.1);
    proving more than the token names is no harm."""
    if bound.x5t_s256 and bound.x5t_s256 != presented.x5t_s256:
        return (
            "The token is bound to a client certificate this request was not made with "
            "(RFC 8705): call over mutual TLS with that certificate."
        )
    if bound.jkt and bound.jkt != presented.jkt:
        if not presented.jkt:
            return (
                "The token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof "
                "of its key (RFC 9449 section 7)."
            )
        return "The DPoP proof was made with another key than the one the token is bound to."
    return ""
