"""The forms of the person's own account page (apps/signin/account.py). Every field is bounded
and checked here, so bad input is a form error on the page, never a 500 (OWASP ASVS 5.1.3,
5.1.4: allow-list validation, lengths bounded)."""

from __future__ import annotations

import unicodedata
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.core.mail import recipient

NAME_MAX = 200  # accounts.User.name's column
EMAIL_MAX = 254  # RFC 5321 §4.5.3.1.3
# Only to bound the hash's input (NIST SP 800-63B §5.1.1.2: at least 64 characters allowed).
PASSWORD_MAX = 1024
# Unicode categories a name never needs: controls (line breaks: header injection into a
# message's To:, OWASP ASVS 5.2.3), line and paragraph separators, surrogates, unassigned.
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs", "Cn"})
# Direction overrides and isolates make a name render as something else (CVE-2021-42574,
# "Trojan Source"); zero-width joiners and the like (also Cf) stay allowed: emoji and some
# scripts need them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable_name(value: str) -> str:
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _BIDI_CONTROLS:
            raise ValidationError(
                "A name cannot contain line breaks, control or direction characters.",
                code="invalid",
            )
    return value


class NameForm(forms.Form):
    name = forms.CharField(label="Name", max_length=NAME_MAX, required=False, strip=True)

    def clean_name(self) -> str:
        return _printable_name(self.cleaned_data["name"])  # trimmed by strip=True


def _address(value: str) -> str:
    """A bare address fit for a message's To: (apps.core.mail.recipient refuses line breaks
    and what is not an address), lower-cased as accounts store them."""
    if any(c in value for c in "\r\n\0"):
        raise ValidationError("An address cannot contain line breaks.", code="invalid")
    recipient(value)
    return value.lower()


class EmailChangeForm(forms.Form):
    email = forms.EmailField(label="New e-mail address", max_length=EMAIL_MAX)
    password = forms.CharField(
        label="Current password", max_length=PASSWORD_MAX, strip=False, widget=forms.PasswordInput
    )

    def __init__(self, *args: Any, current_email: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current_email = current_email

    def clean_email(self) -> str:
        email = _address(self.cleaned_data["email"])
        if email == self.current_email.lower():
            raise ValidationError("This is already your address.", code="unchanged")
        return email


class PasswordChangeForm(forms.Form):
    current_password = forms.CharField(
        label="Current password", max_length=PASSWORD_MAX, strip=False, widget=forms.PasswordInput
    )
    new_password = forms.CharField(
        label="New password", max_length=PASSWORD_MAX, strip=False, widget=forms.PasswordInput
    )
    new_password_again = forms.CharField(
        label="New password, again",
        max_length=PASSWORD_MAX,
        strip=False,
        widget=forms.PasswordInput,
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        new, again = cleaned.get("new_password"), cleaned.get("new_password_again")
        if new is not None and again is not None and new != again:
            self.add_error("new_password_again", "The two new passwords differ.")
        return cleaned
