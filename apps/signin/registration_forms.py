from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from apps.accounts.models import User
from apps.accounts.services import normalize_email
from apps.core.mail import recipient

# Control characters (C0 and DEL) have no place in a name: they would reach mail headers
# (header injection, OWASP ASVS 4.0.3 5.2.3) and the console.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NAME_MAX = 200  # User.name


class RegistrationForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    # RFC 5321 §4.5.3.1.3: an address is at most 254 octets.
    email = forms.EmailField(max_length=254)
    # Capped only to bound the hash's input (NIST SP 800-63B §5.1.1.2: at least 64 allowed);
    # the password policy (AUTH_PASSWORD_VALIDATORS) says the rest.
    password1 = forms.CharField(max_length=1024, strip=False, label="Password")
    password2 = forms.CharField(max_length=1024, strip=False, label="Password again")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if _CONTROL.search(name):
            raise ValidationError("Remove the line breaks and control characters.")
        return name

    def clean_email(self) -> str:
        email = normalize_email(str(self.cleaned_data["email"]))
        recipient(email)  # refuses what a mail header cannot carry
        return email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first and "email" in data and "name" in data:
            try:
                # UserAttributeSimilarityValidator compares with the address and the name.
                validate_password(first, user=User(email=data["email"], name=data["name"]))
            except ValidationError as error:
                self.add_error("password1", error)
        return data
