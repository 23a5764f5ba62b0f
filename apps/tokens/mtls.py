"""Mutual TLS (RFC 8705): a client authenticates with its certificate (§2), and tokens issued
over mutual TLS are bound to that certificate (§3).

- `tls_client_auth` (§2.1): the certificate chains to a CA of MTLS_CLIENT_CA_FILE and carries
  the one subject DN or subjectAltName entry the client registered (§2.1.2).
- `self_signed_tls_client_auth` (§2.2): the certificate is one of the x5c certificates of the
  client's registered `jwks`, within its validity dates.
- Binding (§3): a token request that came with a certificate gets tokens whose `cnf` names
  its x5t#S256 thumbprint; a client registered with
  tls_client_certificate_bound_access_tokens (§3.4) cannot get a token without one.

The certificate reaches us through apps/core/client_cert.py (Tessera's own mutual-TLS
listener, or the header of a trusted proxy)."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import json
import logging
import re
import secrets
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ObjectIdentifier, verification
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse

from apps.core.client_cert import presented_certificate, presented_intermediates, thumbprint
from apps.tokens.models import Client

log = logging.getLogger("tessera.mtls")

CERTIFICATE_METHODS_ORDER = (Client.AuthMethod.TLS.value, Client.AuthMethod.SELF_SIGNED.value)
CERTIFICATE_METHODS = frozenset(CERTIFICATE_METHODS_ORDER)
# RFC 8705 §5: the endpoints a client calls with its certificate, by metadata name.
ALIASED_ENDPOINTS = {
    "token_endpoint": "tokens:token",
    "userinfo_endpoint": "tokens:userinfo",
    "introspection_endpoint": "tokens:introspect",
    "revocation_endpoint": "tokens:revoke",
    "pushed_authorization_request_endpoint": "tokens:par",
}
# RFC 8705 §2.1.2: the client metadata naming a tls_client_auth client's certificate, and the
# Client columns of the same names (exactly one is registered).
IDENTIFIERS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)
BOUND_TOKENS_REQUIRED = (
    "This client's access tokens are bound to its certificate "
    "(tls_client_certificate_bound_access_tokens, RFC 8705 section 3.4): call over mutual TLS "
    "with it."
)


def secret_nobody_knows() -> str:
    """What a certificate client's secret column holds: 256 random bits, stored hashed and
    never shown, so that no secret (not even an empty one) authenticates it should its method
    be switched back before a secret is rotated."""
    return secrets.token_urlsafe(32)


def uses_certificate(client: Client) -> bool:
    """Whether the client authenticates with its certificate, and only so (RFC 8705 §2)."""
    return client.token_endpoint_auth_method in CERTIFICATE_METHODS


def certificate_authenticates(request: HttpRequest, client: Client) -> bool:
    """RFC 8705 §2: whether this request's client certificate proves `client`."""
    certificate = presented_certificate(request)
    if certificate is None:
        return False
    now = datetime.datetime.now(datetime.UTC)
    try:
        if client.token_endpoint_auth_method == Client.AuthMethod.TLS:
            intermediates = presented_intermediates(request)
            return _chains_to_client_ca(certificate, intermediates, now) and _names_client(
                certificate, client
            )
        if client.token_endpoint_auth_method == Client.AuthMethod.SELF_SIGNED:
            return _is_registered(certificate, client, now)
    except ValueError:
        # cryptography parses a certificate's parts lazily: a part that does not decode
        # (a malformed extension, name or date) proves nothing, and is no 500.
        return False
    return False


def presented_thumbprint(request: HttpRequest) -> str:
    """What a resource request proves (RFC 8705 §3): its certificate's thumbprint, or ""."""
    certificate = presented_certificate(request)
    return thumbprint(certificate) if certificate is not None else ""


def endpoint_aliases() -> dict[str, str]:
    """RFC 8705 §5 mtls_endpoint_aliases: the endpoints at MTLS_BASE_URL (the origin of the
    listener that asks for client certificates, idp/mtls.py, or of the proxy that does), or
    {} when there is none."""
    base = settings.MTLS_BASE_URL.rstrip("/")
    if not base:
        return {}
    return {name: base + reverse(route) for name, route in ALIASED_ENDPOINTS.items()}


# --- tls_client_auth (§2.1) --------------------------------------------------------------


@cache
def _client_ca_store(path: Path | None) -> verification.Store | None:
    """The trust anchors of MTLS_CLIENT_CA_FILE, read once per process (a new bundle takes a
    restart); an unreadable bundle is logged and trusts nothing."""
    if path is None:
        return None
    try:
        roots = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        log.error(
            "IDP_MTLS_CLIENT_CA_FILE holds no readable PEM certificate", extra={"path": str(path)}
        )
        return None
    return verification.Store(roots)


# The web PKI profile's checks (RFC 5280 plus CA/Browser Forum rules: basicConstraints,
# keyUsage, the clientAuth extended key usage), except that the client certificate needs no
# subjectAltName: RFC 8705 §2.1.2 lets a client be named by its subject DN alone.
_CA_POLICY = verification.ExtensionPolicy.webpki_defaults_ca()
_CLIENT_POLICY = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
)


def _chains_to_client_ca(
    certificate: x509.Certificate,
    intermediates: list[x509.Certificate],
    now: datetime.datetime,
) -> bool:
    """RFC 8705 §2.1: the certificate path validates (RFC 5280 §6 with the profile above:
    validity dates, CA constraints, the clientAuth extended key usage) up to a trust anchor of
    MTLS_CLIENT_CA_FILE, through the intermediates the client sent when Tessera's own
    listener took them (a proxy's header carries the leaf alone: intermediates then belong in
    the bundle)."""
    store = _client_ca_store(settings.MTLS_CLIENT_CA_FILE)
    if store is None:
        return False
    verifier = (
        verification.PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_CLIENT_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(certificate, intermediates)
    except verification.VerificationError:
        return False
    return True


def _names_client(certificate: x509.Certificate, client: Client) -> bool:
    """RFC 8705 §2.1.2: the ONE registered identifier names the certificate: its subject DN
    (compared as RFC 4517 distinguishedNameMatch does: attribute by attribute, values
    case-insensitively with insignificant spaces folded) or one subjectAltName entry."""
    if client.tls_client_auth_subject_dn:
        try:
            wanted = parse_dn(client.tls_client_auth_subject_dn)
        except ValueError:
            return False
        return dn_key(certificate.subject) == dn_key(wanted)
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    if client.tls_client_auth_san_dns:
        wanted_dns = client.tls_client_auth_san_dns.lower().rstrip(".")
        return any(
            d.lower().rstrip(".") == wanted_dns for d in sans.get_values_for_type(x509.DNSName)
        )
    if client.tls_client_auth_san_uri:
        return client.tls_client_auth_san_uri in sans.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    if client.tls_client_auth_san_ip:
        try:
            wanted_ip = ipaddress.ip_address(client.tls_client_auth_san_ip)
        except ValueError:
            return False
        return wanted_ip in sans.get_values_for_type(x509.IPAddress)
    if client.tls_client_auth_san_email:
        return _email_key(client.tls_client_auth_san_email) in {
            _email_key(e) for e in sans.get_values_for_type(x509.RFC822Name)
        }
    return False  # registered without an identifier: nothing can match


# RFC 4514 §3's attribute type names and a few common others; RFC 4512 §1.4: keywords are
# case-insensitive (cryptography's parser knows only its own spelling of each).
_DN_KEYWORDS = {
    "CN": NameOID.COMMON_NAME, "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME, "STREET": NameOID.STREET_ADDRESS, "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID, "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER, "TITLE": NameOID.TITLE, "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME, "GIVENNAME": NameOID.GIVEN_NAME,
    "ORGANIZATIONIDENTIFIER": NameOID.ORGANIZATION_IDENTIFIER,
}  # fmt: skip
# A space right after an unescaped "," or "+" separates, as people write DNs ("CN=a, O=b");
# a value's own leading space would be escaped ("\ "), RFC 4514 §2.4.
_SPACE_AFTER_SEPARATOR = re.compile(r"(?<!\\)((?:\\\\)*)([,+]) +")


class _Keywords(dict[str, ObjectIdentifier]):
    def get(self, name: str, default: Any = None) -> Any:
        return _DN_KEYWORDS.get(name.upper(), default)


def parse_dn(text: str) -> x509.Name:
    """A distinguished name from its RFC 4514 string, attribute keywords in any case and
    spaces after separators allowed; ValueError when it is not one."""
    return x509.Name.from_rfc4514_string(
        _SPACE_AFTER_SEPARATOR.sub(r"\1\2", text.strip()), _Keywords(_DN_KEYWORDS)
    )


def dn_key(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A distinguished name as compared (RFC 4517 §4.2.15 distinguishedNameMatch with
    caseIgnoreMatch values, RFC 4518 insignificant space handling): each RDN's attributes by
    OID, values case-folded with runs of spaces made one."""
    return tuple(
        tuple(sorted((a.oid.dotted_string, _fold(a.value)) for a in rdn)) for rdn in name.rdns
    )


def _fold(value: str | bytes) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return " ".join(text.split()).casefold()


def _email_key(address: str) -> str:
    """RFC 5280 §4.2.1.6: the local part is case-sensitive, the domain is not."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


# --- self_signed_tls_client_auth (§2.2) --------------------------------------------------


def _is_registered(certificate: x509.Certificate, client: Client, now: datetime.datetime) -> bool:
    """RFC 8705 §2.2.2: the presented certificate is one the client registered (an x5c
    member of its jwks), byte for byte, and it is within its validity dates."""
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return False
    der = certificate.public_bytes(Encoding.DER)
    return der in registered_certificates(client.jwks)


def registered_certificates(jwks: Any) -> list[bytes]:
    """The DER certificates in a JWK Set's x5c members (RFC 7517 §4.7: base64, not base64url);
    members that do not decode are skipped (registration refuses them: jwks_certificates)."""
    found = []
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for key in keys if isinstance(keys, list) else []:
        chain = key.get("x5c") if isinstance(key, dict) else None
        for encoded in chain if isinstance(chain, list) else []:
            if not isinstance(encoded, str):
                continue
            try:
                found.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                continue
    return found


# --- registration (RFC 8705 §2.1.2, §2.2.2, §3.4 client metadata) ------------------------

MAX_JWKS_CHARS = 65_536  # a few certificates; a client registering more is doing it wrong


def registration_set(
    client: Client,
    *,
    token_endpoint_auth_method: str,
    tls_client_auth_subject_dn: str,
    tls_client_auth_san_dns: str,
    tls_client_auth_san_uri: str,
    tls_client_auth_san_ip: str,
    tls_client_auth_san_email: str,
    jwks: Any,
    tls_client_certificate_bound_access_tokens: bool,
) -> None:
    """Checks a client's mutual-TLS metadata and sets it on `client` (unsaved). Raises
    ValidationError keyed by the field at fault: an unknown method; a certificate method for
    a public client (it has no client authentication, RFC 6749 §2.1); tls_client_auth without
    exactly one identifier, or with one that does not parse (§2.1.2); an identifier for
    another method; self_signed_tls_client_auth without a jwks holding x5c certificates
    (§2.2.2); a jwks that is not a JWK Set (RFC 7517 §5)."""
    method = token_endpoint_auth_method or ""
    if method not in Client.AuthMethod.values:
        raise ValidationError(
            {"token_endpoint_auth_method": "Use tls_client_auth, self_signed_tls_client_auth "
             "or nothing (a client secret)."}
        )  # fmt: skip
    if method and client.client_type == Client.CLIENT_PUBLIC:
        raise ValidationError(
            {"token_endpoint_auth_method": "A public client does not authenticate (RFC 6749 "
             "§2.1): mutual-TLS authentication is for confidential clients."}
        )  # fmt: skip
    identifiers = {
        "tls_client_auth_subject_dn": (tls_client_auth_subject_dn or "").strip(),
        "tls_client_auth_san_dns": (tls_client_auth_san_dns or "").strip(),
        "tls_client_auth_san_uri": (tls_client_auth_san_uri or "").strip(),
        "tls_client_auth_san_ip": (tls_client_auth_san_ip or "").strip(),
        "tls_client_auth_san_email": (tls_client_auth_san_email or "").strip(),
    }
    given = [field for field, value in identifiers.items() if value]
    if method == Client.AuthMethod.TLS:
        if len(given) != 1:
            raise ValidationError(
                {(given[1] if given else "tls_client_auth_subject_dn"): "tls_client_auth needs "
                 "exactly one of the subject DN or a SAN (DNS, URI, IP, email) (RFC 8705 "
                 "§2.1.2)."}
            )  # fmt: skip
        _identifier_check(given[0], identifiers[given[0]])
    elif given:
        raise ValidationError(
            {given[0]: "A certificate subject is registered only for tls_client_auth."}
        )
    certificates = jwks_certificates(jwks)  # raises on a malformed set
    if method == Client.AuthMethod.SELF_SIGNED and not certificates:
        raise ValidationError(
            {"jwks": "self_signed_tls_client_auth needs a jwks whose keys carry the client's "
             "certificate in x5c (RFC 8705 §2.2.2)."}
        )  # fmt: skip
    client.token_endpoint_auth_method = method
    for field, value in identifiers.items():
        setattr(client, field, value)
    client.jwks = jwks or None
    client.tls_client_certificate_bound_access_tokens = bool(
        tls_client_certificate_bound_access_tokens
    )


def _identifier_check(field: str, value: str) -> None:
    """RFC 8705 §2.1.2: each identifier in the form its certificate field has."""
    problem = ""
    if len(value) > Client._meta.get_field(field).max_length:
        problem = "is too long"
    elif field == "tls_client_auth_subject_dn":
        try:
            if not parse_dn(value).rdns:
                problem = "names no attribute"
        except ValueError:
            problem = "is not an RFC 4514 distinguished name (CN=client,O=Example,C=DE)"
    elif field == "tls_client_auth_san_dns":
        labels = value.rstrip(".").split(".")
        if not all(label and len(label) <= 63 and label.replace("-", "").isalnum()
                   and label.isascii() for label in labels):  # fmt: skip
            problem = "is not a DNS name"
    elif field == "tls_client_auth_san_uri":
        parts = urlsplit(value)
        if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in value):
            problem = "is not an absolute URI"
    elif field == "tls_client_auth_san_ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            problem = "is not an IPv4 or IPv6 address"
    elif field == "tls_client_auth_san_email":
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain or any(c.isspace() for c in value):
            problem = "is not an email address"
    if problem:
        raise ValidationError({field: f"{field} {problem}."})


def jwks_certificates(jwks: Any) -> list[x509.Certificate]:
    """The certificates of a registered JWK Set's x5c members; None is no set. Raises
    ValidationError (key "jwks") for a value that is not a JWK Set of objects (RFC 7517 §5),
    one too large, or an x5c member that is not a base64 DER certificate (§4.7)."""
    if jwks is None or jwks == {}:
        return []
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValidationError({"jwks": 'A JWK Set is a JSON object {"keys": [...]} (RFC 7517).'})
    if len(json.dumps(jwks)) > MAX_JWKS_CHARS:
        raise ValidationError({"jwks": f"The JWK Set is over {MAX_JWKS_CHARS} characters."})
    certificates = []
    for number, key in enumerate(jwks["keys"], start=1):
        if not isinstance(key, dict):
            raise ValidationError({"jwks": f"Key {number} is not a JSON object."})
        chain = key.get("x5c", [])
        if not isinstance(chain, list):
            raise ValidationError({"jwks": f"Key {number}: x5c is a list of certificates."})
        for encoded in chain:
            try:
                der = base64.b64decode(str(encoded), validate=True)
                certificates.append(x509.load_der_x509_certificate(der))
            except (binascii.Error, ValueError):
                raise ValidationError(
                    {"jwks": f"Key {number}: an x5c member is not a base64 DER certificate "
                     "(RFC 7517 §4.7)."}
                ) from None  # fmt: skip
    return certificates


def jwks_parse(text: str) -> Any:
    """A JWK Set from the JSON an operator gives (a console field, createclient's
    --jwks-file); blank is none. Raises ValidationError (key "jwks")."""
    if not text.strip():
        return None
    try:
        jwks = json.loads(text)
    except ValueError as error:
        raise ValidationError({"jwks": f"The JWK Set is not JSON: {error}."}) from None
    except RecursionError:
        raise ValidationError({"jwks": "The JWK Set is not JSON: nested too deeply."}) from None
    jwks_certificates(jwks)
    return jwks


def certificate_summary(jwks: Any) -> list[str]:
    """The x5t#S256 thumbprints of a registered jwks's certificates: how events and pages name
    them (never the whole set)."""
    return [
        base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")
        for der in registered_certificates(jwks)
    ]
