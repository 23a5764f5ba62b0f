"""What the console's identity-provider form accepts: every field bounded here and turned
into what apps.federation.providers takes (OWASP ASVS 5.1.3); whether a value is right (an
https issuer, a PEM key that loads, a rule naming an organization that exists) is that
module's to say, and its message goes under the field."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.federation.models import ClientAuthMethod, Provider, ProviderKind
from apps.federation.providers import (
    DOMAINS_MAX,
    EXTRA_PARAMS_MAX,
    SECRET_MAX,
    provider_settings,
)

_SEPARATORS = re.compile(r"[\s,]+")
TEXT_MAX = 20_000  # a textarea of rules or parameters; far more than 50 rules take


class SecretTextarea(forms.Textarea):
    """Write-only: the page never carries a secret back, not even the one just typed into a
    form that is shown again with errors."""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        return super().get_context(name, None, attrs)


class ProviderForm(forms.Form):
    slug = forms.CharField(
        max_length=63,
        help_text="In the callback URL, /login/federated/<slug>/callback: lower-case letters, "
        "digits and hyphens.",
    )
    name = forms.CharField(max_length=100, help_text="On the button: “Sign in with <name>”.")
    kind = forms.ChoiceField(choices=ProviderKind.choices)
    issuer = forms.CharField(
        max_length=500,
        required=False,
        help_text="OpenID Connect: the issuer URL its discovery document is read from. Empty "
        "for Google (https://accounts.google.com) and GitHub (https://github.com).",
    )
    client_id = forms.CharField(max_length=255, label="Client id")
    client_auth_method = forms.ChoiceField(
        choices=ClientAuthMethod.choices, label="Client authentication"
    )
    client_secret = forms.CharField(
        max_length=SECRET_MAX,
        required=False,
        strip=False,
        label="Client secret",
        widget=SecretTextarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
        help_text="private_key_jwt: the private key in PEM. Stored encrypted, never shown.",
    )
    scopes = forms.CharField(
        max_length=500,
        required=False,
        help_text="Separated by spaces; empty for the kind's default.",
    )
    extra_params = forms.CharField(
        max_length=TEXT_MAX,
        required=False,
        label="Extra authorization parameters",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One NAME=VALUE a line, e.g. prompt=select_account.",
    )
    use_userinfo = forms.BooleanField(required=False, label="Read the userinfo endpoint too")
    enabled = forms.BooleanField(required=False, label="Enabled (a button on the sign-in page)")
    jit_provisioning = forms.BooleanField(
        required=False,
        label="Create an account at a first sign-in whose verified e-mail has none",
    )
    hosted_domains = forms.CharField(
        max_length=TEXT_MAX,
        required=False,
        help_text="Google only: the accepted hd values (Workspace domains), separated by spaces.",
    )
    login_domains = forms.CharField(
        max_length=TEXT_MAX,
        required=False,
        help_text="A login_hint in one of these e-mail domains goes straight to this provider.",
    )
    mapping_rules = forms.CharField(
        max_length=TEXT_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text='JSON: [{"claim": "groups", "value": "staff", "organization": "<slug>", '
        '"role": "<role name>"}]. The organizations named follow the claims at each sign-in.',
    )

    def __init__(self, *args: Any, creating: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creating = creating
        if creating:
            self.fields["client_secret"].help_text = (
                "From the provider's console. private_key_jwt: the private key in PEM. "
                "Stored encrypted, never shown again."
            )
        else:
            self.fields["client_secret"].help_text = (
                "Leave empty to keep the current one. A new one replaces it; it is stored "
                "encrypted and never shown."
            )
        if self.is_bound and creating and self.data.get("client_secret"):
            # The page never carries the secret back (see the field): say it must be typed
            # again, not let the next submit fail on "required".
            self.fields["client_secret"].help_text = (
                "Type it again: a secret is never sent back to the page, not even after an "
                "error elsewhere on the form. " + str(self.fields["client_secret"].help_text)
            )

    @staticmethod
    def initial_of(provider: Provider) -> dict[str, Any]:
        values = provider_settings(provider)
        return values | {
            "extra_params": "\n".join(f"{k}={v}" for k, v in values["extra_params"].items()),
            "hosted_domains": " ".join(values["hosted_domains"]),
            "login_domains": " ".join(values["login_domains"]),
            "mapping_rules": json.dumps(values["mapping_rules"], indent=2)
            if values["mapping_rules"]
            else "",
        }

    def clean_client_secret(self) -> str:
        secret: str = self.cleaned_data["client_secret"]
        if self.creating and not secret.strip():
            raise ValidationError("The client secret the provider issued is required.")
        return secret.strip() if "PRIVATE KEY" in secret else secret.strip("\r\n")

    def clean_extra_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["extra_params"].splitlines(), start=1):
            if not line.strip():
                continue
            name, equals, value = line.strip().partition("=")
            if not equals or not name.strip():
                raise ValidationError(f"Line {number}: write NAME=VALUE.")
            params[name.strip()] = value.strip()
        if len(params) > EXTRA_PARAMS_MAX:
            raise ValidationError(f"Use at most {EXTRA_PARAMS_MAX} extra parameters.")
        return params

    def _domains(self, field: str) -> list[str]:
        domains = [d for d in _SEPARATORS.split(self.cleaned_data[field]) if d]
        if len(domains) > DOMAINS_MAX:
            raise ValidationError(f"Use at most {DOMAINS_MAX} domains ({len(domains)} given).")
        return domains

    def clean_hosted_domains(self) -> list[str]:
        return self._domains("hosted_domains")

    def clean_login_domains(self) -> list[str]:
        return self._domains("login_domains")

    def clean_mapping_rules(self) -> Any:
        text = self.cleaned_data["mapping_rules"].strip()
        if not text:
            return []
        try:
            return json.loads(text)
        except ValueError as error:
            raise ValidationError(f"This is not JSON: {error}.") from None

    def fields_for_service(self) -> dict[str, Any]:
        """The provider's fields as apps.federation.providers takes them (no secret)."""
        return {k: v for k, v in self.cleaned_data.items() if k != "client_secret"}
