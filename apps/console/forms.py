"""What the console and the admin API accept from an operator: every field bounded and parsed
here, so a malformed value is a 400 with a message, never a database error (OWASP ASVS 5.1.3:
validate input against an allow-list of what is expected)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict

from apps.sessions.selectors import SessionCursor


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


class SessionFilterForm(forms.Form):
    """Filters of the sessions list: exact matches, each one an index lookup. The fields are
    the keyword arguments of selectors.session_page."""

    email = forms.EmailField(required=False, max_length=254, label="User email")
    ip_address = forms.GenericIPAddressField(required=False, label="IP address")
    device_id = forms.CharField(required=False, max_length=64, label="Device id")
    live_only = forms.BooleanField(required=False, label="Live only")
    after = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_after(self) -> SessionCursor | None:
        text: str = self.cleaned_data["after"]
        if not text:
            return None
        try:
            return SessionCursor.parse(text)
        except ValueError:
            raise forms.ValidationError(
                "This page link is malformed; start again from the first page.", code="invalid"
            ) from None
