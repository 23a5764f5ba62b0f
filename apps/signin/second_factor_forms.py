"""The second-factor page's forms. Each checks the answer's form before it reaches apps.mfa
(and its counter): a typo of the wrong length is told at once and costs no attempt."""

from __future__ import annotations

from django import forms

from apps.mfa.passkeys import MAX_RESPONSE_BYTES
from apps.mfa.recovery import ALPHABET, CODE_LENGTH
from apps.mfa.totp import DIGITS


class TotpForm(forms.Form):
    code = forms.CharField(label="Code from your authenticator app", max_length=16)

    def clean_code(self) -> str:
        code = "".join(str(self.cleaned_data["code"]).split())
        if len(code) != DIGITS or not code.isascii() or not code.isdigit():
            raise forms.ValidationError(f"Type the {DIGITS} digits your authenticator app shows.")
        return code


class RecoveryCodeForm(forms.Form):
    code = forms.CharField(label="Recovery code", max_length=40)

    def clean_code(self) -> str:
        code = "".join(str(self.cleaned_data["code"]).split()).replace("-", "").upper()
        if len(code) != CODE_LENGTH or not all(c in ALPHABET for c in code):
            raise forms.ValidationError(
                f"A recovery code is {CODE_LENGTH} letters and digits, like ABCD-EFGH-JKLM-NPQR."
            )
        return code


class WebAuthnForm(forms.Form):
    """What the page's script (apps/mfa/static/mfa/webauthn.js) submits: the ceremony's id
    and the browser's answer as JSON (py_webauthn's parse_*_credential_json format)."""

    ceremony = forms.CharField(max_length=64)
    credential = forms.CharField(max_length=MAX_RESPONSE_BYTES, strip=False)
    name = forms.CharField(max_length=64, required=False)
