"""Writing upstream providers: the only way to change one (the console, the admin API and
`manage.py federation_provider` call these), and unlinking an identity.

Each change is checked field by field (a ValidationError naming the field, with a message a
person can act on), recorded as `federation.provider_changed` in the same transaction with
the provider before and after — never its secret: `secret_changed` says whether it was
replaced — and reaches every process's list of enabled providers (selectors, the cache
"federation") once it commits (OWASP ASVS 7.2.2: administrative actions are logged).

The client secret, or for private_key_jwt the PEM private key, is sealed under the
key-encryption key (apps.core.sealing) with associated data naming the row, so a sealed
value copied to another provider does not open. It is never returned by a page or the API.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, ProtectedError
from django.utils import timezone

from apps.core import sealing
from apps.core.cache import publish_on_commit
from apps.core.events import EventType, emit
from apps.federation.mapping import mapping_rules_check
from apps.federation.models import ClientAuthMethod, FederatedIdentity, Provider, ProviderKind
from apps.federation.selectors import CACHE_NAME
from apps.sessions.models import LoginSession
from apps.sessions.services import session_end

# What provider_update may change; the id, the timestamps and the sealed secret are the
# system's (the secret changes through `client_secret`).
EDITABLE = (
    "slug",
    "name",
    "kind",
    "issuer",
    "client_id",
    "client_auth_method",
    "scopes",
    "extra_params",
    "use_userinfo",
    "enabled",
    "jit_provisioning",
    "hosted_domains",
    "login_domains",
    "mapping_rules",
)
# A slug is a path segment of the callback (/login/federated/<slug>/callback): DNS-label-like.
SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
SLUG_MAX = 63
# Path segments beside <slug> under /login/federated/ (apps/federation/urls.py) and the
# console's /console/federation/providers/new.
RESERVED_SLUGS = frozenset({"link", "new"})
NAME_MAX = Provider._meta.get_field("name").max_length or 100
ISSUER_MAX = Provider._meta.get_field("issuer").max_length or 500
CLIENT_ID_MAX = Provider._meta.get_field("client_id").max_length or 255
SCOPES_MAX = Provider._meta.get_field("scopes").max_length or 500
SECRET_MAX = 16_384  # a 4096-bit RSA key in PEM is about 3.3 kB
EXTRA_PARAMS_MAX = 20
EXTRA_PARAM_NAME_MAX = 64
EXTRA_PARAM_VALUE_MAX = 500
DOMAINS_MAX = 50
# The authorization request's own parameters, which extra_params must not override
# (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1, RFC 9101 §5).
RESERVED_EXTRA_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "scope",
        "request",
        "request_uri",
    }
)
DEFAULT_ISSUERS = {
    ProviderKind.GOOGLE: "https://accounts.google.com",
    ProviderKind.GITHUB: "https://github.com",
}
DEFAULT_SCOPES = {
    ProviderKind.OIDC: "openid email profile",
    ProviderKind.GOOGLE: "openid email profile",
    # GitHub OAuth apps: the profile and the e-mail addresses with their `verified` flags.
    ProviderKind.GITHUB: "read:user user:email",
}
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+\Z")
# RFC 1035 §2.3.1 labels, lower case, at least two of them; an IDN as its A-label (RFC 5890).
DOMAIN_RE = re.compile(
    r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})\Z"
)
PARAM_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- the administrators' reads (beside the writes, as tokens/clients_admin.py) ----------------


@dataclass(frozen=True)
class ProviderRow:
    provider: Provider
    linked: int  # identities linked through it


def provider_list() -> list[ProviderRow]:
    """Every provider, enabled or not, by name, with how many people are linked through it
    (one statement; providers are few: one row per upstream)."""
    rows = Provider.objects.annotate(linked=Count("identities")).order_by("name", "slug")
    return [ProviderRow(row, row.linked) for row in rows]


def provider_find(key: str) -> Provider | None:
    """A provider by its slug or its id (a string from a command line or a URL)."""
    if not isinstance(key, str) or not key or len(key) > 64:
        return None
    try:
        return Provider.objects.filter(pk=uuid.UUID(key)).first()
    except ValueError:
        return Provider.objects.filter(slug=key).first()


def provider_linked_count(provider: Provider) -> int:
    return FederatedIdentity.objects.filter(provider=provider).count()


def provider_settings(provider: Provider) -> dict[str, Any]:
    """What an administrator sees and edits of a provider: every field but the secret."""
    return {field: getattr(provider, field) for field in EDITABLE}


# --- the secret -------------------------------------------------------------------------------


def _aad(provider_id: object) -> bytes:
    return b"federation-provider:" + str(provider_id).encode()


def provider_secret(provider: Provider) -> str:
    """The provider's client secret (or PEM private key) in clear, for the upstream client
    only. Raises apps.core.sealing.UnsealError when it does not open (another row's value,
    or a key-encryption key no longer configured)."""
    return sealing.unseal(
        bytes(provider.sealed_secret), sealed_by=provider.kek_id, aad=_aad(provider.pk)
    ).decode()


def _same_secret(provider: Provider, secret: str) -> bool:
    try:
        return hmac.compare_digest(provider_secret(provider).encode(), secret.encode())
    except sealing.UnsealError:  # unreadable now: the new one replaces it
        return False


def _seal(provider: Provider, secret: str) -> None:
    provider.sealed_secret, provider.kek_id = sealing.seal(secret.encode(), aad=_aad(provider.pk))


class SealedProviderSecrets:
    """Providers' client secrets for `manage.py reseal` (apps.core.reseal,
    settings.SEALED_ROWS): the same secret, sealed again under the current key-encryption
    key. Not a change of the provider (no federation.provider_changed, updated_at kept)."""

    model = Provider

    def reseal(self, row: Provider) -> None:
        _seal(row, provider_secret(row))
        row.save(update_fields=["sealed_secret", "kek_id"])

    def batch_resealed(self) -> None:
        # Every process's list of enabled providers holds the rows as they were sealed.
        publish_on_commit(CACHE_NAME)


# --- writes ------------------------------------------------------------------------------------


def provider_create(
    *,
    actor_id: object,
    slug: str,
    name: str,
    kind: str,
    client_id: str,
    client_secret: str,
    issuer: str = "",
    client_auth_method: str = ClientAuthMethod.CLIENT_SECRET_BASIC,
    scopes: str | None = None,
    extra_params: dict[str, str] | None = None,
    use_userinfo: bool = False,
    enabled: bool = True,
    jit_provisioning: bool = False,
    hosted_domains: Iterable[str] = (),
    login_domains: Iterable[str] = (),
    mapping_rules: Iterable[dict[str, str]] = (),
) -> Provider:
    """A new provider, checked and recorded; ValidationError naming each field that is
    wrong. An empty issuer means the kind's own (Google, GitHub); an empty scopes the
    kind's default."""
    values = _checked(
        {
            "slug": slug,
            "name": name,
            "kind": kind,
            "issuer": issuer,
            "client_id": client_id,
            "client_auth_method": client_auth_method,
            "scopes": scopes,
            "extra_params": {} if extra_params is None else extra_params,
            "use_userinfo": use_userinfo,
            "enabled": enabled,
            "jit_provisioning": jit_provisioning,
            "hosted_domains": _listed(hosted_domains),
            "login_domains": _listed(login_domains),
            "mapping_rules": _listed(mapping_rules),
        },
        secret=client_secret,
        secret_required=True,
    )
    # The id is chosen here: the secret's AAD names the row before it is inserted.
    provider = Provider(id=uuid.uuid4(), **values)
    _seal(provider, client_secret)
    with transaction.atomic():
        _domains_free(values["login_domains"], provider_id=provider.pk)
        _saved(provider, force_insert=True)
        _record(
            provider,
            "created",
            actor_id,
            before=None,
            after=provider_settings(provider),
            secret=True,
        )
    return provider


def provider_update(*, provider: Provider, actor_id: object, **fields: Any) -> Provider:
    """Change some of EDITABLE, and the secret with a non-empty `client_secret` (empty or
    absent keeps it); the provider as it is after. Nothing changed: nothing recorded.

    The issuer and kind cannot change while people are linked: a subject is only unique
    within its issuer (OIDC Core §2, §5.7), so the same subject at another issuer is another
    person, who would sign in to the linked accounts. Create a new provider instead."""
    given = fields.pop("client_secret", None)
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise ValidationError(
            dict.fromkeys(unknown, "This field cannot be changed."), code="invalid"
        )
    if given is not None and not isinstance(given, str):
        raise ValidationError({"client_secret": "A client secret is text."}, code="invalid")
    secret: str = given or ""
    for listed in ("hosted_domains", "login_domains", "mapping_rules"):
        if listed in fields:
            fields[listed] = _listed(fields[listed])
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        before = provider_settings(locked)
        merged = before | fields
        if "kind" in fields and fields["kind"] != before["kind"]:
            # The kind's defaults apply to what was the old kind's default.
            for field, defaults in (("issuer", DEFAULT_ISSUERS), ("scopes", DEFAULT_SCOPES)):
                if field not in fields and before[field] == defaults.get(before["kind"], ""):
                    merged[field] = ""
        method_switched = (merged["client_auth_method"] == ClientAuthMethod.PRIVATE_KEY_JWT) != (
            before["client_auth_method"] == ClientAuthMethod.PRIVATE_KEY_JWT
        )
        after = _checked(merged, secret=secret, secret_required=method_switched)
        secret_changed = bool(secret) and not _same_secret(locked, secret)
        changed = [field for field in EDITABLE if after[field] != before[field]]
        if not changed and not secret_changed:
            _copy(locked, provider)
            return provider
        moved = [f for f in ("issuer", "kind") if f in changed]
        if moved:
            linked = provider_linked_count(locked)
            if linked:
                raise ValidationError(
                    {
                        moved[0]: f"{_people(linked)} linked through {locked.name}; a subject is "
                        "only unique at its own issuer, so they would be other people's. "
                        "Create a new provider instead."
                    },
                    code="linked",
                )
        for field in changed:
            setattr(locked, field, after[field])
        if secret_changed:
            _seal(locked, secret)
        locked.updated_at = timezone.now()
        _domains_free(after["login_domains"], provider_id=locked.pk)
        _saved(locked)
        _record(
            locked,
            "updated",
            actor_id,
            before={field: before[field] for field in changed},
            after={field: after[field] for field in changed},
            secret=secret_changed,
        )
    _copy(locked, provider)
    return provider


def provider_set_enabled(*, provider: Provider, enabled: bool, actor_id: object) -> Provider:
    """Show or hide the provider's sign-in button and accept or refuse its callbacks, in
    every process within a second. A disabled provider keeps its linked identities."""
    if not isinstance(enabled, bool):
        raise ValidationError({"enabled": "Enabled is true or false."}, code="invalid")
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        if locked.enabled != enabled:
            locked.enabled = enabled
            locked.updated_at = timezone.now()
            locked.save(update_fields=["enabled", "updated_at"])
            _record(
                locked,
                "enabled" if enabled else "disabled",
                actor_id,
                before={"enabled": not enabled},
                after={"enabled": enabled},
                secret=False,
            )
    _copy(locked, provider)
    return provider


def provider_delete(*, provider: Provider, actor_id: object) -> None:
    """Remove a provider nobody is linked through; with linked people, disable it instead
    (its links would otherwise go with it, and an account that signs in only through it
    would be left with no way in)."""
    with transaction.atomic():
        locked = Provider.objects.select_for_update().filter(pk=provider.pk).first()
        if locked is None:
            return  # deleted meanwhile (another request): nothing left to record
        linked = provider_linked_count(locked)
        if linked:
            raise _still_linked(locked, linked)
        before = provider_settings(locked)
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError:  # linked meanwhile (PROTECT on FederatedIdentity.provider)
            raise _still_linked(locked, 1) from None
        locked.pk = provider.pk  # delete() clears it; the event names the row
        _record(locked, "deleted", actor_id, before=before, after=None, secret=False)


def identity_unlink(
    *,
    identity: FederatedIdentity,
    actor_id: object,
    reason: str,
    keep_session_id: uuid.UUID | None = None,
) -> None:
    """Unlink an upstream identity from its account (the person from their security page,
    an operator from the console or the API): that upstream account no longer signs in
    here, and the live login sessions it signed in end with it (reason "unlinked": their
    tokens are refused, relying parties told), but `keep_session_id`, the browser of the
    person who unlinked it. Already unlinked (a concurrent request): nothing to record.
    Whether another way to sign in remains is the caller's question (the person's page asks
    it; an operator may unlink regardless, e.g. an upstream account known to be taken over)."""
    with transaction.atomic():
        deleted = FederatedIdentity.objects.filter(pk=identity.pk).delete()[0]
        if not deleted:
            return
        opened_through_it = LoginSession.objects.filter(
            user_id=identity.user_id, provider=identity.provider.slug, ended_at__isnull=True
        )
        if keep_session_id is not None:
            opened_through_it = opened_through_it.exclude(pk=keep_session_id)
        for session in opened_through_it:
            session_end(session=session, reason="unlinked", actor_id=actor_id)
        emit(
            EventType.FEDERATION_UNLINKED,
            user_id=identity.user_id,
            actor_id=actor_id,
            resource_type="federated_identity",
            resource_id=identity.pk,
            metadata={
                "provider": identity.provider.slug,
                "subject": identity.subject,
                "reason": reason,
            },
        )


# --- checks ------------------------------------------------------------------------------------


def _checked(values: dict[str, Any], *, secret: str, secret_required: bool) -> dict[str, Any]:
    """The values as stored, or ValidationError with a message per wrong field."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}

    def check(field: str, fn: Any, *args: Any) -> None:
        try:
            out[field] = fn(values[field], *args)
        except _Wrong as wrong:
            errors[field] = str(wrong)

    check("slug", _slug)
    check("name", _text, "A name", NAME_MAX)
    check("kind", _kind)
    kind = out.get("kind")
    check("issuer", _issuer, kind)
    check("client_id", _text, "A client id", CLIENT_ID_MAX)
    check("client_auth_method", _auth_method, kind)
    check("scopes", _scopes, kind)
    check("extra_params", _extra_params)
    for flag in ("use_userinfo", "enabled", "jit_provisioning"):
        check(flag, _flag)
    check("hosted_domains", _domains, "hosted domain")
    if out.get("hosted_domains") and kind and kind != ProviderKind.GOOGLE:
        errors["hosted_domains"] = "Only a Google provider has hosted domains (its `hd` claim)."
    if out.get("use_userinfo") and kind == ProviderKind.GITHUB:
        errors["use_userinfo"] = "GitHub has no userinfo endpoint: its API is always read."
    check("login_domains", _domains, "login domain")
    try:
        out["mapping_rules"] = mapping_rules_check(values["mapping_rules"])
    except ValidationError as error:
        errors["mapping_rules"] = error.message_dict["mapping_rules"][0]
    if secret_required or secret:
        try:
            _secret(secret, out.get("client_auth_method"))
        except _Wrong as wrong:
            errors["client_secret"] = str(wrong)
    if errors:
        raise ValidationError(errors, code="invalid")
    return out


class _Wrong(Exception):
    """One field's message."""


def _listed(value: Any) -> Any:
    """A list from a tuple or other iterable given in Python; anything else is left for the
    checks to name (a string or a mapping is not a list)."""
    if isinstance(value, str | bytes | dict):
        return value
    if isinstance(value, Iterable):
        return list(value)
    return value


def _slug(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Wrong("A slug is required.")
    value = value.strip()
    if not SLUG_RE.match(value) or len(value) < 2:
        raise _Wrong(
            f"Use 2-{SLUG_MAX} lower-case letters, digits and hyphens, starting and ending with "
            f"a letter or digit (“{value[:80]}” is not)."
        )
    if value in RESERVED_SLUGS:
        raise _Wrong(f"“{value}” is reserved; choose another slug.")
    return value


def _text(value: object, what: str, maximum: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Wrong(f"{what} is required.")
    value = value.strip()
    if len(value) > maximum:
        raise _Wrong(f"Use at most {maximum} characters ({len(value)} given).")
    if _CONTROL.search(value):
        raise _Wrong("Remove the control characters.")
    return value


def _kind(value: object) -> str:
    if value not in ProviderKind.values:
        raise _Wrong(f"A kind is one of {', '.join(ProviderKind.values)}.")
    return str(value)


def _issuer(value: object, kind: str | None) -> str:
    if value is None or value == "":
        if kind in DEFAULT_ISSUERS:
            return DEFAULT_ISSUERS[ProviderKind(kind)]
        raise _Wrong("An OpenID Connect provider needs its issuer URL.")
    if not isinstance(value, str):
        raise _Wrong("An issuer is a URL.")
    if len(value) > ISSUER_MAX:
        raise _Wrong(f"Use at most {ISSUER_MAX} characters ({len(value)} given).")
    if _CONTROL.search(value) or " " in value:
        raise _Wrong("An issuer has no spaces or control characters.")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise _Wrong("The issuer is not a URL.") from None
    # OIDC Discovery 1.0 §3 (issuer): https, no query, no fragment; compared exactly (§4.3).
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise _Wrong("An issuer has no query or fragment (OIDC Discovery §3).")
    if parts.username is not None or parts.password is not None:
        raise _Wrong("An issuer carries no user name or password.")
    host = parts.hostname or ""
    if not host:
        raise _Wrong("The issuer names no host.")
    if parts.scheme == "https":
        return value
    if parts.scheme == "http" and _loopback(host):
        if settings.FEDERATION_ALLOW_LOOPBACK_HTTP:
            return value
        raise _Wrong(
            "An http:// issuer is accepted only on loopback with "
            "IDP_FEDERATION_ALLOW_LOOPBACK_HTTP (for trying a provider locally); use https."
        )
    raise _Wrong("An issuer is an https:// URL (OIDC Discovery §3).")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_method(value: object, kind: str | None) -> str:
    if value is None or value == "":
        return ClientAuthMethod.CLIENT_SECRET_BASIC
    if value not in ClientAuthMethod.values:
        raise _Wrong(f"A client authentication method is one of {', '.join(ClientAuthMethod)}.")
    if value == ClientAuthMethod.PRIVATE_KEY_JWT and kind in (
        ProviderKind.GITHUB,
        ProviderKind.GOOGLE,
    ):
        raise _Wrong(
            f"{ProviderKind(kind).label} takes client_secret_basic or client_secret_post, "
            "not private_key_jwt."
        )
    return str(value)


def _scopes(value: object, kind: str | None) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_SCOPES.get(ProviderKind(kind), "") if kind else ""
    if isinstance(value, list | tuple):
        if not all(isinstance(scope, str) for scope in value):
            raise _Wrong("Scopes are words separated by spaces.")
        value = " ".join(value)
    if not isinstance(value, str):
        raise _Wrong("Scopes are words separated by spaces.")
    words = list(dict.fromkeys(value.split()))
    bad = next((word for word in words if not SCOPE_TOKEN_RE.match(word)), None)
    if bad is not None:
        raise _Wrong(f"“{bad[:40]}” is not a scope (RFC 6749 §3.3).")
    joined = " ".join(words)
    if len(joined) > SCOPES_MAX:
        raise _Wrong(f"Use at most {SCOPES_MAX} characters ({len(joined)} given).")
    if kind in (ProviderKind.OIDC, ProviderKind.GOOGLE) and "openid" not in words:
        # OIDC Core §3.1.2.1: without openid the request is plain OAuth and no ID token comes.
        raise _Wrong("An OpenID Connect provider's scopes include openid.")
    return joined


def _extra_params(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Wrong("Extra parameters are a mapping of names to text values.")
    if len(value) > EXTRA_PARAMS_MAX:
        raise _Wrong(f"Use at most {EXTRA_PARAMS_MAX} extra parameters ({len(value)} given).")
    out: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not PARAM_NAME_RE.match(name):
            raise _Wrong(f"“{str(name)[:40]}” is not a parameter name (letters, digits, _ . -).")
        if len(name) > EXTRA_PARAM_NAME_MAX:
            raise _Wrong(f"A parameter name has at most {EXTRA_PARAM_NAME_MAX} characters.")
        if name.lower() in RESERVED_EXTRA_PARAMS:
            raise _Wrong(
                f"“{name}” is the protocol's own parameter and is set by Tessera; it cannot be "
                "an extra parameter."
            )
        if not isinstance(text, str):
            raise _Wrong(f"The value of “{name}” is text.")
        if len(text) > EXTRA_PARAM_VALUE_MAX or _CONTROL.search(text):
            raise _Wrong(
                f"The value of “{name}” has at most {EXTRA_PARAM_VALUE_MAX} characters and no "
                "control characters."
            )
        out[name] = text
    return out


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Wrong("This is true or false.")
    return value


def _domains(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Wrong(f"A {what} list is a list of domain names.")
    if len(value) > DOMAINS_MAX:
        raise _Wrong(f"Use at most {DOMAINS_MAX} domains ({len(value)} given).")
    out: list[str] = []
    for domain in value:
        if not isinstance(domain, str):
            raise _Wrong(f"A {what} is a domain name like example.com.")
        domain = domain.strip().lower().rstrip(".")
        if not DOMAIN_RE.match(domain):
            raise _Wrong(f"“{domain[:80]}” is not a domain name like example.com.")
        if domain not in out:
            out.append(domain)
    return out


def _secret(value: str, method: str | None) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _Wrong(_secret_needed(method))
    if len(value) > SECRET_MAX:
        raise _Wrong(f"Use at most {SECRET_MAX} characters.")
    if method != ClientAuthMethod.PRIVATE_KEY_JWT:
        if _CONTROL.search(value):
            raise _Wrong("A client secret has no control characters or line breaks.")
        return
    # RFC 7523 §2.2 with a key the upstream can check: RSA of at least 2048 bits (NIST SP
    # 800-57 Part 1 §5.6.1) or EC P-256 (ES256).
    try:
        key = load_pem_private_key(value.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise _Wrong(
            "private_key_jwt needs an unencrypted PEM private key (RSA or EC P-256)."
        ) from None
    except Exception:  # cryptography raises its own for unsupported algorithms
        raise _Wrong("private_key_jwt needs an RSA or EC P-256 private key in PEM.") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise _Wrong(f"An RSA key has at least 2048 bits ({key.key_size} given).")
        return
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return
    raise _Wrong("private_key_jwt needs an RSA (2048 bits or more) or EC P-256 private key.")


def _secret_needed(method: str | None) -> str:
    if method == ClientAuthMethod.PRIVATE_KEY_JWT:
        return "private_key_jwt needs the private key in PEM as the secret."
    return "The client secret the provider issued is required."


def _domains_free(domains: list[str], *, provider_id: uuid.UUID) -> None:
    """A login domain routes to one provider only (home-realm discovery must not depend on
    names' order)."""
    if not domains:
        return
    for other in Provider.objects.exclude(pk=provider_id).only("name", "login_domains"):
        taken = sorted(set(domains) & {str(d) for d in other.login_domains or ()})
        if taken:
            raise ValidationError(
                {"login_domains": f"{taken[0]} is already a login domain of {other.name}."},
                code="unique",
            )


def _saved(provider: Provider, *, force_insert: bool = False) -> None:
    try:
        with transaction.atomic():
            provider.save(force_insert=force_insert)
    except IntegrityError:  # the slug taken meanwhile by another request
        raise ValidationError(
            {"slug": f"A provider with the slug “{provider.slug}” exists already."},
            code="unique",
        ) from None


def _people(count: int) -> str:
    return f"{count} {'person is' if count == 1 else 'people are'}"


def still_linked_message(provider: Provider, count: int) -> str:
    """Why a provider with linked people is not deleted, and what to do instead."""
    return (
        f"{_people(count)} linked through {provider.name}; disable it instead (it stays "
        "listed, their links stay, and it can be enabled again), or unlink them first."
    )


def _still_linked(provider: Provider, count: int) -> ValidationError:
    return ValidationError(still_linked_message(provider, count), code="protected")


def _copy(source: Provider, target: Provider) -> None:
    if source is not target:
        for field in (*EDITABLE, "sealed_secret", "kek_id", "updated_at"):
            setattr(target, field, getattr(source, field))


def _record(
    provider: Provider,
    action: str,
    actor_id: object,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    secret: bool,
) -> None:
    changed = list(EDITABLE) if before is None or after is None else list(after)
    emit(
        EventType.FEDERATION_PROVIDER_CHANGED,
        actor_id=actor_id,
        resource_type="provider",
        resource_id=provider.pk,
        action=action,
        metadata={
            "provider": provider.slug,
            "changed": changed,
            "before": before,
            "after": after,
            "secret_changed": secret,
        },
    )
    publish_on_commit(CACHE_NAME)  # every process's enabled providers, within a second
