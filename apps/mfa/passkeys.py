"""WebAuthn (Level 2) security keys and passkeys, verified by py_webauthn.

Registration (§7.1) and authentication (§7.2) are ceremonies of two steps: *_begin() makes the
options the browser passes to navigator.credentials.create()/get() and keeps their challenge
in Redis under a random ceremony id (CEREMONY_TTL, read and deleted in one GETDEL: a challenge
answers once); *_finish() takes that id and the browser's response. The relying party is the
issuer: RP ID its host name, the origin its scheme://host[:port] (§5.1.3, §13.4.9).

Defaults: attestation "none" (§5.4.7; we trust no vendor list), resident key preferred and
user verification preferred at registration; as a second factor user verification is
preferred; for passwordless sign-in (a discoverable credential, no allowCredentials) it is
required (§6.2.3: the credential alone must then prove the person, not only a present one).

Every bad input ends in an MfaError (MalformedInput for what is not a WebAuthn response or is
larger than MAX_RESPONSE_BYTES, InvalidResponse when verification fails), never another
exception. A signature counter that does not grow (§6.1.1) is taken for a cloned
authenticator: the credential is flagged (clone_detected_at, committed) and refused.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import webauthn
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.core.redis import get_redis
from apps.mfa.errors import (
    CeremonyExpired,
    ClonedAuthenticator,
    FactorNotFound,
    InvalidResponse,
    MalformedInput,
    MfaError,
    UnknownCredential,
)
from apps.mfa.models import WebAuthnCredential

CEREMONY_TTL = 300  # seconds a challenge may be answered (the browser's timeout is 120 s)
TIMEOUT_MS = 120_000  # WebAuthn L2 §5.4 timeout hint to the browser
# A "none" attestation with a P-256 key is under 1 KiB; packed/TPM certificate chains a few
# KiB. Anything larger is refused before parsing.
MAX_RESPONSE_BYTES = 64 * 1024
USER_HANDLE_BYTES = 32  # §5.4.3: random, at most 64 bytes, no personal data
NAME_MAX = WebAuthnCredential._meta.get_field("name").max_length or 64
_KEY = "mfa:webauthn:ceremony:"
_REGISTER, _AUTHENTICATE = "register", "authenticate"


@dataclass(frozen=True)
class Ceremony:
    """`options_json` goes to the browser; `id` stays with the caller (its session) and
    comes back to *_finish()."""

    id: str
    options_json: str


@dataclass(frozen=True)
class Assertion:
    credential: WebAuthnCredential
    user_verified: bool
    passwordless: bool


def rp_id() -> str:
    return urlsplit(settings.ISSUER).hostname or "localhost"


def expected_origin() -> str:
    parts = urlsplit(settings.ISSUER)
    return f"{parts.scheme}://{parts.netloc}"


# --- registration (§7.1) -----------------------------------------------------------------


def webauthn_registration_begin(*, user: User) -> Ceremony:
    existing = list(WebAuthnCredential.objects.filter(user=user).order_by("created_at"))
    user_handle = (
        bytes(existing[0].user_handle) if existing else secrets.token_bytes(USER_HANDLE_BYTES)
    )
    options = webauthn.generate_registration_options(
        rp_id=rp_id(),
        rp_name=settings.SITE_NAME,
        user_name=user.email,
        user_id=user_handle,
        user_display_name=user.name or user.email,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        # §5.4.3 excludeCredentials: the same authenticator is not registered twice.
        exclude_credentials=[_descriptor(credential) for credential in existing],
    )
    ceremony_id = _store(
        purpose=_REGISTER,
        user_id=user.pk,
        challenge=options.challenge,
        user_handle=user_handle,
        uv_required=False,
    )
    return Ceremony(ceremony_id, webauthn.options_to_json(options))


def webauthn_registration_finish(
    *,
    user: User,
    ceremony_id: str,
    response: str | Mapping[str, Any],
    name: str,
    now: datetime | None = None,
) -> WebAuthnCredential:
    now = now or timezone.now()
    try:
        state = _take(ceremony_id, purpose=_REGISTER, user_id=user.pk)
        document = _document(response)
        try:
            parsed: RegistrationCredential = parse_registration_credential_json(dict(document))
        except Exception as error:  # the library's parsers raise what the input provokes
            raise MalformedInput(f"not a WebAuthn registration response: {error}") from None
        try:
            verified = webauthn.verify_registration_response(
                credential=parsed,
                expected_challenge=state["challenge"],
                expected_rp_id=rp_id(),
                expected_origin=expected_origin(),
            )
        except InvalidRegistrationResponse as error:
            raise InvalidResponse(str(error)) from None
        except Exception as error:  # CBOR, COSE or structure the verifier could not read
            raise MalformedInput(f"unreadable WebAuthn registration response: {error}") from None
        credential = WebAuthnCredential(
            user=user,
            name=" ".join(name.split())[:NAME_MAX] or "Security key",
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=[t.value for t in parsed.response.transports or ()],
            backup_eligible=verified.credential_device_type.value == "multi_device",
            backup_state=verified.credential_backed_up,
            user_handle=state["user_handle"],
            discoverable=_discoverable(document),
            aaguid=verified.aaguid,
            created_at=now,
        )
        try:
            with transaction.atomic():
                credential.save(force_insert=True)
                emit(
                    EventType.MFA_ENROLLED,
                    user_id=user.pk,
                    resource_type="webauthn",
                    resource_id=credential.pk,
                    metadata={
                        "name": credential.name,
                        "aaguid": credential.aaguid,
                        "backup_eligible": credential.backup_eligible,
                        "discoverable": credential.discoverable,
                    },
                )
        except IntegrityError:
            raise InvalidResponse("this credential is registered already") from None
    except MfaError as error:
        _failed(error, user_id=user.pk, action="register")
        raise
    return credential


# --- authentication (§7.2) ---------------------------------------------------------------


def webauthn_authentication_begin(*, user: User | None = None) -> Ceremony:
    """For `user`: a second factor, their credentials in allowCredentials. Without one:
    passwordless sign-in with a discoverable credential, user verification required."""
    allowed: list[PublicKeyCredentialDescriptor] = []
    if user is not None:
        allowed = [
            _descriptor(credential)
            for credential in WebAuthnCredential.objects.filter(
                user=user, clone_detected_at__isnull=True
            ).order_by("created_at")
        ]
        if not allowed:
            raise FactorNotFound("no WebAuthn credential")
    uv_required = user is None
    options = webauthn.generate_authentication_options(
        rp_id=rp_id(),
        timeout=TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if uv_required
            else UserVerificationRequirement.PREFERRED
        ),
    )
    ceremony_id = _store(
        purpose=_AUTHENTICATE,
        user_id=user.pk if user is not None else None,
        challenge=options.challenge,
        user_handle=b"",
        uv_required=uv_required,
    )
    return Ceremony(ceremony_id, webauthn.options_to_json(options))


def webauthn_authentication_finish(
    *,
    ceremony_id: str,
    response: str | Mapping[str, Any],
    user: User | None = None,
    now: datetime | None = None,
) -> Assertion:
    """The credential that answered. `user`: the person of a second-factor ceremony (None for
    passwordless sign-in: the credential names the person)."""
    now = now or timezone.now()
    user_id: object = user.pk if user is not None else None
    try:
        state = _take(ceremony_id, purpose=_AUTHENTICATE, user_id=user_id)
        document = _document(response)
        try:
            parsed: AuthenticationCredential = parse_authentication_credential_json(dict(document))
        except Exception as error:
            raise MalformedInput(f"not a WebAuthn authentication response: {error}") from None
        credential = _credential(parsed, user=user)
        user_id = credential.user_id
        if credential.clone_detected_at is not None:
            raise ClonedAuthenticator("this credential was flagged as cloned")
        try:
            # Counter 0: the library's own counter check runs before the signature check;
            # ours below runs after it, so only the key's holder can get a credential flagged.
            verified = webauthn.verify_authentication_response(
                credential=parsed,
                expected_challenge=state["challenge"],
                expected_rp_id=rp_id(),
                expected_origin=expected_origin(),
                credential_public_key=bytes(credential.public_key),
                credential_current_sign_count=0,
                require_user_verification=state["uv_required"],
            )
        except InvalidAuthenticationResponse as error:
            raise InvalidResponse(str(error)) from None
        except Exception as error:
            raise MalformedInput(f"unreadable WebAuthn authentication response: {error}") from None
        return _record_use(credential, verified, passwordless=user is None, now=now)
    except MfaError as error:
        _failed(error, user_id=user_id, action="authenticate")
        raise


def _credential(parsed: AuthenticationCredential, *, user: User | None) -> WebAuthnCredential:
    credential = WebAuthnCredential.objects.filter(credential_id=parsed.raw_id).first()
    if credential is None or (user is not None and credential.user_id != user.pk):
        raise UnknownCredential("no such credential for this account")
    handle = parsed.response.user_handle
    # §7.2 step 6: a userHandle, when given, is the one the credential was registered with.
    if handle is not None and handle != bytes(credential.user_handle):
        raise UnknownCredential("the user handle does not match the credential")
    return credential


def _record_use(
    credential: WebAuthnCredential,
    verified: VerifiedAuthentication,
    *,
    passwordless: bool,
    now: datetime,
) -> Assertion:
    new_count = verified.new_sign_count
    with transaction.atomic():
        locked = WebAuthnCredential.objects.select_for_update().get(pk=credential.pk)
        # §6.1.1 / §7.2 step 21: a counter that is in use must grow with every assertion.
        stored_count = locked.sign_count
        cloned = (new_count > 0 or stored_count > 0) and new_count <= stored_count
        if cloned:
            locked.clone_detected_at = now
            locked.save(update_fields=["clone_detected_at"])
        else:
            locked.sign_count = new_count
            locked.backup_state = verified.credential_backed_up
            locked.last_used_at = now
            locked.save(update_fields=["sign_count", "backup_state", "last_used_at"])
            emit(
                EventType.MFA_SUCCEEDED,
                user_id=locked.user_id,
                resource_type="webauthn",
                resource_id=locked.pk,
                metadata={"passwordless": passwordless, "user_verified": verified.user_verified},
            )
    if cloned:  # raised after the flag has committed
        raise ClonedAuthenticator(
            f"signature counter {new_count} did not grow past {stored_count}: "
            "the authenticator may have been cloned"
        )
    return Assertion(locked, user_verified=verified.user_verified, passwordless=passwordless)


# --- ceremonies in Redis -----------------------------------------------------------------


def _store(
    *, purpose: str, user_id: object, challenge: bytes, user_handle: bytes, uv_required: bool
) -> str:
    ceremony_id = secrets.token_urlsafe(32)
    state = {
        "purpose": purpose,
        "user_id": str(user_id) if user_id is not None else None,
        "challenge": bytes_to_base64url(challenge),
        "user_handle": bytes_to_base64url(user_handle),
        "uv_required": uv_required,
    }
    get_redis().set(_KEY + ceremony_id, json.dumps(state), ex=CEREMONY_TTL)
    return ceremony_id


def _take(ceremony_id: str, *, purpose: str, user_id: object) -> dict[str, Any]:
    """The ceremony's state, deleted as it is read (GETDEL: one answer per challenge)."""
    if not isinstance(ceremony_id, str) or not 0 < len(ceremony_id) <= 64:
        raise CeremonyExpired("no such WebAuthn ceremony")
    raw = get_redis().getdel(_KEY + ceremony_id)
    if raw is None:
        raise CeremonyExpired("the WebAuthn ceremony expired or was used already")
    state: dict[str, Any] = json.loads(raw)
    expected_user = str(user_id) if user_id is not None else None
    if state["purpose"] != purpose or state["user_id"] != expected_user:
        raise CeremonyExpired("the WebAuthn ceremony belongs to another request")
    state["challenge"] = base64url_to_bytes(state["challenge"])
    state["user_handle"] = base64url_to_bytes(state["user_handle"])
    return state


def _document(response: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(response, str | bytes):
        if len(response) > MAX_RESPONSE_BYTES:
            raise MalformedInput(f"a WebAuthn response is at most {MAX_RESPONSE_BYTES} bytes")
        try:
            document = json.loads(response)
        except (ValueError, RecursionError):
            raise MalformedInput("a WebAuthn response is a JSON object") from None
    else:
        document = response
        try:
            size = len(json.dumps(document))
        except (TypeError, ValueError, RecursionError):
            raise MalformedInput("a WebAuthn response is a JSON object") from None
        if size > MAX_RESPONSE_BYTES:
            raise MalformedInput(f"a WebAuthn response is at most {MAX_RESPONSE_BYTES} bytes")
    if not isinstance(document, Mapping):
        raise MalformedInput("a WebAuthn response is a JSON object")
    return document


def _discoverable(document: Mapping[str, Any]) -> bool:
    """The credProps extension's answer (WebAuthn L2 §10.4), when the browser gave one."""
    results = document.get("clientExtensionResults")
    props = results.get("credProps") if isinstance(results, Mapping) else None
    return isinstance(props, Mapping) and props.get("rk") is True


def _descriptor(credential: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    known = {t.value for t in AuthenticatorTransport}
    return PublicKeyCredentialDescriptor(
        id=bytes(credential.credential_id),
        transports=[AuthenticatorTransport(t) for t in credential.transports if t in known],
    )


def _failed(error: MfaError, *, user_id: object, action: str) -> None:
    emit(
        EventType.MFA_FAILED,
        user_id=user_id if isinstance(user_id, uuid.UUID | str) else None,
        resource_type="webauthn",
        action=action,
        success=False,
        error_code=error.error_code,
    )
