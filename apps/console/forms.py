"""What the console and the admin API accept from an operator: every field bounded and parsed
here, so a malformed value is a 400 with a message, never a database error (OWASP ASVS 5.1.3:
validate input against an allow-list of what is expected)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import QueryDict

from apps.accounts.models import User
from apps.audit.store import PAGE_SIZE, PAGE_SIZE_MAX, EventCursor, EventFilters, InvalidFilter
from apps.core.cursors import KeysetCursor
from apps.core.events import EventType, Severity
from apps.core.privacy import PSEUDONYM_PREFIX
from apps.ratelimit.rules import rules
from apps.ratelimit.services import BadBlockKey, block_key
from apps.sessions.selectors import user_lookup
from apps.tokens.models import Client


class UserLookupForm(forms.Form):
    """Exactly one of an email address or a user id (the UUID that is `sub` in tokens)."""

    email = forms.EmailField(required=False, max_length=254)
    id = forms.UUIDField(
        required=False, error_messages={"invalid": "A user id is a UUID, like the sub of a token."}
    )

    @classmethod
    def from_search(cls, query: QueryDict) -> UserLookupForm:
        """The console's one search box: an address has an @, anything else is an id."""
        text = query.get("q", "").strip()
        return cls({"email": text} if "@" in text else {"id": text})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        if bool(cleaned.get("email")) == bool(cleaned.get("id")):
            raise forms.ValidationError("Give an email address or a user id.", code="required")
        return cleaned


_TRUE = frozenset({"true", "1", "yes", "on"})  # "on": what the console's checkbox sends
_FALSE = frozenset({"false", "0", "no", "off"})


def _checked(value: Any) -> bool:
    return value is True or str(value).strip().lower() in _TRUE


class _QueryBooleanInput(forms.CheckboxInput):
    """The text as sent, for QueryBooleanField to judge: CheckboxInput makes any text other
    than "false" True, so live_only=maybe filtered as if it said yes."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, check_test=_checked)

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name)


class QueryBooleanField(forms.BooleanField):
    """A yes/no filter in a query string: true or false (1/0, yes/no, on/off too); absent or
    blank is false; anything else a 400 naming the field (OWASP ASVS 4.0 V5.1.3: input checked
    against an allow list, not guessed at)."""

    widget = _QueryBooleanInput

    def to_python(self, value: Any) -> bool:
        if value is None or value is False or value == "":
            return False
        if value is True:
            return True
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValidationError("Enter true or false.", code="invalid")


class SessionFilterForm(forms.Form):
    """Filters of the sessions list: exact matches, each one an index lookup. The fields are
    the keyword arguments of selectors.session_page."""

    email = forms.EmailField(required=False, max_length=254, label="User email")
    ip_address = forms.GenericIPAddressField(required=False, label="IP address")
    device_id = forms.CharField(required=False, max_length=64, label="Device id")
    live_only = QueryBooleanField(required=False, label="Live only")
    after = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_after(self) -> KeysetCursor | None:
        text: str = self.cleaned_data["after"]
        if not text:
            return None
        try:
            return KeysetCursor.parse(text)
        except ValueError:
            raise forms.ValidationError(
                "This page link is malformed; start again from the first page.", code="invalid"
            ) from None


_PSEUDONYM = re.compile(re.escape(PSEUDONYM_PREFIX) + "[0-9a-f]{32}")
_ANY = [("", "Any")]
# datetime-local sends 2025-03-14T09:26 (or with seconds); offsets are accepted from scripts.
_MOMENT = forms.DateTimeInput(
    attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S"
)


class UtcDateTimeField(forms.DateTimeField):
    """A moment, in UTC. Python takes offsets up to ±23:59, PostgreSQL only up to ±15:59 (a
    query with `+21:30` was a 500), and a moment near year 1 can leave the calendar once moved
    to UTC: both are turned into UTC here or refused as a field error."""

    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError("This time is out of range.", code="invalid") from None


class AuditSearchForm(forms.Form):
    """Filters of the audit search, its exports and the admin API's event endpoints, turned
    into the audit store's EventFilters (which refuse what no store could answer, with the
    message shown here). Times without an offset are UTC, as the console shows them."""

    user = forms.CharField(required=False, max_length=254, label="User (email or id)")
    event_type = forms.ChoiceField(
        required=False, choices=_ANY + [(t, t) for t in EventType.values], label="Event"
    )
    since = UtcDateTimeField(required=False, label="From (UTC)", widget=_MOMENT)
    until = UtcDateTimeField(required=False, label="To (UTC, excluded)", widget=_MOMENT)
    ip_address = forms.GenericIPAddressField(required=False, label="IP address")
    success = forms.ChoiceField(
        required=False, choices=[*_ANY, ("yes", "Succeeded"), ("no", "Failed")], label="Outcome"
    )
    severity = forms.ChoiceField(required=False, choices=_ANY + [(s, s) for s in Severity.values])
    after = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    person: User | None = None  # the account the user filter names, when it has one
    filters = EventFilters()

    def clean_user(self) -> str:
        """The user id to filter on, from an email address (an account's), a user id or an
        erased person's pseudonym."""
        text: str = self.cleaned_data["user"].strip()
        if not text or _PSEUDONYM.fullmatch(text):
            return text
        if "@" in text:
            validate_email(text)
            self.person = user_lookup(email=text)
            if self.person is None:
                raise ValidationError(
                    "No account has this email address; search by user id instead.",
                    code="not_found",
                )
            return str(self.person.pk)
        try:
            user_id = uuid.UUID(text)
        except ValueError:
            raise ValidationError(
                "A user is an email address, a user id (a UUID) or a pseudonym (anon:…).",
                code="invalid",
            ) from None
        self.person = user_lookup(user_id=user_id)
        return str(user_id)

    def clean_after(self) -> EventCursor | None:
        text: str = self.cleaned_data["after"]
        try:
            return EventCursor.parse(text) if text else None
        except InvalidFilter as invalid:
            raise ValidationError(str(invalid), code="invalid") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        outcome = {"yes": True, "no": False}.get(cleaned["success"])
        try:
            self.filters = EventFilters(
                user_id=cleaned["user"],
                event_type=cleaned["event_type"],
                since=cleaned["since"],
                until=cleaned["until"],
                ip_address=cleaned["ip_address"],
                success=outcome,
                severity=cleaned["severity"],
            )
        except InvalidFilter as invalid:
            raise ValidationError(str(invalid), code="invalid") from None
        return cleaned


class AuditApiSearchForm(AuditSearchForm):
    """The admin API's audit search: the console's filters and a page size."""

    limit = forms.IntegerField(required=False, min_value=1, max_value=PAGE_SIZE_MAX)

    def clean_limit(self) -> int:
        return self.cleaned_data["limit"] or PAGE_SIZE


LOCKOUT_KINDS = [
    ("login", "Sign-in (email address)"),
    ("client", "Client (client id)"),
    ("mfa", "Second factor (account id)"),
]


def _kind_of(identifier: str) -> str:
    """Without a kind, an identifier with an @ is an email address, else a client id (a
    second-factor counter is named by kind: a client id may look like an account id)."""
    return "login" if "@" in identifier else "client"


def _check_account_id(form: forms.Form, kind: str | None, identifier: str) -> None:
    """A second-factor counter is keyed by the account id (apps/signin/second_factor.py)."""
    if kind == "mfa" and identifier:
        try:
            uuid.UUID(identifier)
        except ValueError:
            form.add_error("identifier", "A second-factor lockout is named by the account id.")


class LockoutTargetForm(forms.Form):
    """An identifier whose failed-attempt counters an operator looks up or clears: an email
    address as a person types it at sign-in (kind "login"), a client id (kind "client") or an
    account id (kind "mfa": second-factor answers). Without a kind, an identifier with an @ is
    an email address, else a client id (the console's one search box). Any text up to 254
    characters: counters exist for identifiers no account has."""

    kind = forms.ChoiceField(required=False, choices=[("", "Any"), *LOCKOUT_KINDS])
    identifier = forms.CharField(max_length=254, label="Email address, client id or account id")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and not cleaned.get("kind"):
            cleaned["kind"] = _kind_of(cleaned["identifier"])
        if not self.errors:
            _check_account_id(self, cleaned["kind"], cleaned["identifier"])
        return cleaned


class LockoutFilterForm(LockoutTargetForm):
    """The lockouts page and list: every current lockout (of one kind), and optionally the
    counters of one identifier whatever their state."""

    identifier = forms.CharField(
        required=False, max_length=254, label="Email address, client id or account id"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = forms.Form.clean(self) or {}
        if not self.errors and cleaned.get("identifier") and not cleaned.get("kind"):
            cleaned["lookup_kind"] = _kind_of(cleaned["identifier"])
        else:
            cleaned["lookup_kind"] = cleaned.get("kind")
        if not self.errors:
            _check_account_id(self, cleaned.get("kind"), cleaned.get("identifier", ""))
        return cleaned


class RateLimitBlockForm(forms.Form):
    """A rate-limit key an operator clears: a configured rule's name and its value (an IP
    address or network, an email address, a client id; empty for an endpoint or the global
    rule), checked by apps.ratelimit's block_key so each field names its own fault."""

    rule = forms.CharField(max_length=64)
    value = forms.CharField(required=False, max_length=254)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors:
            try:
                block_key(rule=cleaned["rule"], value=cleaned["value"])
            except BadBlockKey as error:
                self.add_error(error.field, error.message)
        return cleaned


class RateLimitBlockFilterForm(forms.Form):
    """The rate-limit blocks list: every key refusing now, or those of one rule."""

    rule = forms.CharField(required=False, max_length=64)

    def clean_rule(self) -> str:
        rule: str = self.cleaned_data["rule"]
        if rule and rule not in rules():
            raise ValidationError(f"No rate-limit rule is named {rule!r}.")
        return rule


class ClientSearchForm(forms.Form):
    """The clients list: a client id (exact) or part of a name, and the keyset position."""

    q = forms.CharField(required=False, max_length=255, label="Client id or name")
    after = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,  # a bigint primary key: beyond it the database would raise
        widget=forms.HiddenInput,
        error_messages={
            "invalid": "This page link is malformed; start again from the first page.",
            "max_value": "This page link is malformed; start again from the first page.",
        },
    )


class _UriLines(forms.CharField):
    """URIs one per line (or separated by spaces), each kept exactly as typed: redirect URIs
    are compared byte for byte at /authorize (RFC 9700 §4.1.3)."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocapitalize": "off"})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return str(value or "").split()

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")

    def run_validators(self, value: Any) -> None:
        for uri in value:
            if len(uri) > 2000:
                raise ValidationError("A URI has at most 2000 characters.", code="max_length")


GRANT_CHOICES = [
    ("authorization_code", "authorization_code (people sign in)"),
    ("refresh_token", "refresh_token"),
    ("client_credentials", "client_credentials (the client acts for itself)"),
]
ALG_CHOICES = [
    ("RS256", "RS256 (the OIDC default)"),
    ("ES256", "ES256"),
    ("EdDSA", "EdDSA"),
]


class _JwksField(forms.JSONField):
    """A JWK Set as JSON text; no set is an empty box (not "null")."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError:  # Django catches only JSONDecodeError: 100,000 `[` was a 500
            raise ValidationError("The JWK Set is not JSON: nested too deeply.") from None


class ClientForm(forms.Form):
    """A client's registration as an operator edits it; the field names are
    apps.tokens.services.client_configure's arguments, so its errors land on the field at
    fault. The rules themselves are the service's (the ones `createclient` applies)."""

    name = forms.CharField(max_length=255)
    redirect_uris = _UriLines(required=False, label="Redirect URIs (one a line, matched exactly)")
    post_logout_redirect_uris = _UriLines(required=False, label="Post-logout redirect URIs")
    grant_types = forms.MultipleChoiceField(
        choices=GRANT_CHOICES, widget=forms.CheckboxSelectMultiple, label="Grant types"
    )
    skip_consent = forms.BooleanField(required=False, label="First-party: skip the consent page")
    id_token_alg = forms.ChoiceField(choices=ALG_CHOICES, label="ID token algorithm")
    require_pkce = forms.BooleanField(
        required=False,
        initial=True,
        label="Require PKCE (untick only for a confidential client whose library cannot; it "
        "must then send a nonce)",
    )
    require_mfa = forms.BooleanField(
        required=False,
        label="Require a second factor: every sign-in to it reaches the MFA level (people "
        "without one enrol at sign-in)",
    )
    require_par = forms.BooleanField(
        required=False,
        label="Require pushed authorization requests: every request is pushed to /oauth/par "
        "first (RFC 9126)",
    )
    backchannel_logout_uri = forms.CharField(
        required=False, max_length=2000, label="Back-channel logout URI"
    )
    frontchannel_logout_uri = forms.CharField(
        required=False, max_length=2000, label="Front-channel logout URI"
    )
    # RFC 8705: mutual-TLS client authentication and certificate-bound tokens
    token_endpoint_auth_method = forms.ChoiceField(
        choices=Client.AuthMethod.choices,
        required=False,
        label="Client authentication (a confidential client's; mutual TLS: RFC 8705)",
    )
    tls_client_auth_subject_dn = forms.CharField(
        required=False,
        max_length=1000,
        label="tls_client_auth: certificate subject DN (RFC 4514, e.g. CN=billing,O=Example,C=DE)",
    )
    tls_client_auth_san_dns = forms.CharField(
        required=False, max_length=255, label="…or its DNS name (subjectAltName)"
    )
    tls_client_auth_san_uri = forms.CharField(
        required=False, max_length=2000, label="…or its URI (subjectAltName)"
    )
    tls_client_auth_san_ip = forms.CharField(
        required=False, max_length=45, label="…or its IP address (subjectAltName)"
    )
    tls_client_auth_san_email = forms.CharField(
        required=False, max_length=254, label="…or its email address (subjectAltName)"
    )
    jwks = _JwksField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label='self_signed_tls_client_auth: JWK Set with the certificate in x5c ({"keys": [...]})',
    )
    tls_client_certificate_bound_access_tokens = forms.BooleanField(
        required=False,
        label="Certificate-bound tokens only: a token request without its certificate is "
        "refused (RFC 8705 section 3)",
    )
    # OWASP ASVS 10.4.11 / 9.2.4 (apps/tokens/scopes.py, apps/tokens/resources.py)
    allowed_scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} ({words})") for scope, words in settings.SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Scopes it may be granted (one off this list is refused with invalid_scope)",
    )
    allowed_resources = _UriLines(
        required=False,
        label="Resources it may ask tokens for (RFC 8707 resource, one a line, matched "
        'exactly; none: the default audience only; "*": any)',
    )


class ClientRegisterForm(ClientForm):
    """Registration adds what an edit cannot change: the client type and, optionally, the
    client id (migrating from another provider)."""

    public = forms.BooleanField(
        required=False, label="Public client (a browser or mobile app: no secret, PKCE only)"
    )
    client_id = forms.CharField(
        required=False, max_length=100, label="Client id (blank: generated)"
    )
    field_order = ("name", "public", "client_id")


def form_errors(form: forms.Form, invalid: ValidationError) -> None:
    """A service's errors, each on the form field it names (or above the form): how the
    console's pages show a refusal (the admin API's counterpart: api.views._refused)."""
    if not hasattr(invalid, "error_dict"):
        form.add_error(None, invalid)
        return
    for field, errors in invalid.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)
