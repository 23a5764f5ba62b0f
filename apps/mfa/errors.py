"""What a second factor's service raises. Every error is an MfaError, so a view maps the whole
family to one response (400 for the input kind, a refusal for the others), never a 500."""

from __future__ import annotations


class MfaError(Exception):
    """`error_code` is the event's error_code and a stable value a page or API may show."""

    error_code = "mfa_error"


class MalformedInput(MfaError):
    """The input is not what the protocol allows (not six digits, not a WebAuthn response,
    too large): the request is bad, whoever sent it."""

    error_code = "malformed_input"


class CeremonyExpired(MfaError):
    """A WebAuthn ceremony that is unknown, used already or older than its time-out."""

    error_code = "expired_challenge"


class VerificationFailed(MfaError):
    """Well-formed input that does not prove the factor."""

    error_code = "invalid_code"


class ReplayedCode(VerificationFailed):
    """RFC 6238 §5.2: a TOTP code of a time step already used (or older) is refused."""

    error_code = "replayed_code"


class InvalidResponse(VerificationFailed):
    """A WebAuthn response that fails verification (challenge, origin, RP ID, signature)."""

    error_code = "invalid_response"


class UnknownCredential(VerificationFailed):
    error_code = "unknown_credential"


class ClonedAuthenticator(VerificationFailed):
    """WebAuthn L2 §6.1.1: the signature counter did not grow; the credential is flagged."""

    error_code = "cloned_authenticator"


class ReauthenticationRequired(MfaError):
    """Removing a factor needs a fresh authentication (OWASP ASVS 4.0 V2.5.6/V3.7.1)."""

    error_code = "reauthentication_required"


class FactorNotFound(MfaError):
    error_code = "factor_not_found"
