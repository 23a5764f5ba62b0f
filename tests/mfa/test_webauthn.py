"""WebAuthn registration and authentication (WebAuthn L2 §7.1, §7.2) against a software
authenticator built in tests/mfa/authenticator.py; challenges live in the suite's Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.core.models import SecurityEvent
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
from apps.mfa.passkeys import (
    MAX_RESPONSE_BYTES,
    webauthn_authentication_begin,
    webauthn_authentication_finish,
    webauthn_registration_begin,
    webauthn_registration_finish,
)
from tests.accounts.factories import UserFactory
from tests.mfa.authenticator import SoftAuthenticator, b64url, unb64url

pytestmark = pytest.mark.django_db

ORIGIN = "https://id.example.com"


@pytest.fixture(autouse=True)
def _issuer(settings: Any) -> None:
    settings.ISSUER = ORIGIN


def _authenticator(**kwargs: Any) -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, rp_id="id.example.com", **kwargs)


def _registered(**kwargs: Any) -> tuple[Any, SoftAuthenticator, WebAuthnCredential]:
    user = UserFactory()
    authenticator = _authenticator(**kwargs)
    ceremony = webauthn_registration_begin(user=user)
    credential = webauthn_registration_finish(
        user=user,
        ceremony_id=ceremony.id,
        response=json.dumps(authenticator.create(ceremony.options_json)),
        name="Laptop",
    )
    return user, authenticator, credential


def _failures() -> list[str]:
    return list(
        SecurityEvent.objects.filter(event_type="mfa.failed").values_list("error_code", flat=True)
    )


def test_registration_options_follow_the_defaults() -> None:
    user = UserFactory(email="ada@example.com")
    options = json.loads(webauthn_registration_begin(user=user).options_json)
    assert options["rp"]["id"] == "id.example.com"
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["user"]["name"] == "ada@example.com"
    assert len(unb64url(options["user"]["id"])) == 32
    assert options["excludeCredentials"] == []


def test_registered_credential_keeps_its_key_flags_and_transports() -> None:
    user, authenticator, _ = _registered(backup_eligible=True, backed_up=True)
    stored = WebAuthnCredential.objects.get()
    assert bytes(stored.credential_id) == authenticator.credential_id
    assert stored.name == "Laptop"
    assert stored.sign_count == 0
    assert (stored.backup_eligible, stored.backup_state) == (True, True)
    assert stored.discoverable
    assert stored.transports == ["internal", "hybrid"]
    assert bytes(stored.user_handle) == authenticator.user_handle
    assert stored.aaguid == "00000000-0000-0000-0000-000000000000"
    [enrolled] = SecurityEvent.objects.filter(event_type="mfa.enrolled")
    assert (enrolled.resource_type, enrolled.user_id) == ("webauthn", str(user.pk))

    # A second registration excludes the first credential and keeps the user handle.
    options = json.loads(webauthn_registration_begin(user=user).options_json)
    assert [c["id"] for c in options["excludeCredentials"]] == [b64url(authenticator.credential_id)]
    assert unb64url(options["user"]["id"]) == authenticator.user_handle


def test_second_factor_assertion_is_accepted_and_counts() -> None:
    user, authenticator, credential = _registered()
    ceremony = webauthn_authentication_begin(user=user)
    options = json.loads(ceremony.options_json)
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(authenticator.credential_id)]
    assert options["userVerification"] == "preferred"

    assertion = webauthn_authentication_finish(
        user=user, ceremony_id=ceremony.id, response=authenticator.get(ceremony.options_json)
    )
    assert assertion.credential == credential
    assert assertion.user_verified
    assert not assertion.passwordless
    stored = WebAuthnCredential.objects.get()
    assert stored.sign_count == 1
    assert stored.last_used_at is not None
    assert SecurityEvent.objects.filter(event_type="mfa.succeeded").count() == 1


def test_passwordless_needs_user_verification_and_finds_the_person() -> None:
    user, authenticator, _ = _registered()
    ceremony = webauthn_authentication_begin()
    options = json.loads(ceremony.options_json)
    assert options["userVerification"] == "required"
    assert options.get("allowCredentials", []) == []
    assertion = webauthn_authentication_finish(
        ceremony_id=ceremony.id, response=authenticator.get(ceremony.options_json)
    )
    assert assertion.credential.user_id == user.pk
    assert assertion.passwordless

    authenticator.user_verified = False
    ceremony = webauthn_authentication_begin()
    with pytest.raises(InvalidResponse):
        webauthn_authentication_finish(
            ceremony_id=ceremony.id, response=authenticator.get(ceremony.options_json)
        )


def test_a_challenge_answers_once() -> None:
    user, authenticator, _ = _registered()
    ceremony = webauthn_authentication_begin(user=user)
    response = authenticator.get(ceremony.options_json)
    webauthn_authentication_finish(user=user, ceremony_id=ceremony.id, response=response)
    with pytest.raises(CeremonyExpired):
        webauthn_authentication_finish(user=user, ceremony_id=ceremony.id, response=response)


def test_a_ceremony_of_another_person_or_purpose_is_refused() -> None:
    user, authenticator, _ = _registered()
    other = UserFactory()
    ceremony = webauthn_authentication_begin(user=user)
    with pytest.raises(CeremonyExpired):
        webauthn_authentication_finish(
            user=other, ceremony_id=ceremony.id, response=authenticator.get(ceremony.options_json)
        )
    registration = webauthn_registration_begin(user=user)
    with pytest.raises(CeremonyExpired):
        webauthn_authentication_finish(
            user=user,
            ceremony_id=registration.id,
            response=authenticator.get(ceremony.options_json),
        )


@pytest.mark.parametrize(
    "bend",
    [
        {"challenge": b"another challenge of enough length"},
        {"origin": "https://evil.example.com"},
        {"rp_id": "evil.example.com"},
    ],
    ids=["challenge", "origin", "rp_id"],
)
def test_wrong_challenge_origin_or_rp_id_is_refused(bend: dict[str, Any]) -> None:
    user, authenticator, _ = _registered()
    ceremony = webauthn_authentication_begin(user=user)
    with pytest.raises(InvalidResponse):
        webauthn_authentication_finish(
            user=user,
            ceremony_id=ceremony.id,
            response=authenticator.get(ceremony.options_json, **bend),
        )

    fresh = _authenticator()
    registration = webauthn_registration_begin(user=user)
    with pytest.raises(InvalidResponse):
        webauthn_registration_finish(
            user=user,
            ceremony_id=registration.id,
            response=fresh.create(registration.options_json, **bend),
            name="x",
        )
    assert WebAuthnCredential.objects.count() == 1
    assert _failures() == ["invalid_response", "invalid_response"]


def test_signature_by_another_key_is_refused() -> None:
    user, authenticator, _ = _registered()
    impostor = _authenticator(credential_id=authenticator.credential_id)
    impostor.user_handle = authenticator.user_handle
    ceremony = webauthn_authentication_begin(user=user)
    with pytest.raises(InvalidResponse):
        webauthn_authentication_finish(
            user=user, ceremony_id=ceremony.id, response=impostor.get(ceremony.options_json)
        )
    assert WebAuthnCredential.objects.get().clone_detected_at is None


def test_counter_regression_flags_a_cloned_authenticator() -> None:
    user, authenticator, _ = _registered()
    for _ in range(3):
        ceremony = webauthn_authentication_begin(user=user)
        webauthn_authentication_finish(
            user=user, ceremony_id=ceremony.id, response=authenticator.get(ceremony.options_json)
        )
    assert WebAuthnCredential.objects.get().sign_count == 3

    # WebAuthn L2 §6.1.1: a counter that did not grow means two copies of the key exist.
    ceremony = webauthn_authentication_begin(user=user)
    with pytest.raises(ClonedAuthenticator):
        webauthn_authentication_finish(
            user=user,
            ceremony_id=ceremony.id,
            response=authenticator.get(ceremony.options_json, sign_count=2),
        )
    stored = WebAuthnCredential.objects.get()
    assert stored.clone_detected_at is not None
    assert stored.sign_count == 3
    assert _failures() == ["cloned_authenticator"]

    # Flagged: refused even with a growing counter, and no longer offered.
    with pytest.raises(FactorNotFound):
        webauthn_authentication_begin(user=user)
    ceremony = webauthn_authentication_begin()
    with pytest.raises(ClonedAuthenticator):
        webauthn_authentication_finish(
            ceremony_id=ceremony.id, response=authenticator.get(ceremony.options_json)
        )


def test_credential_of_another_person_is_unknown() -> None:
    user, _, _ = _registered()
    _, other_authenticator, _ = _registered()
    ceremony = webauthn_authentication_begin(user=user)
    with pytest.raises(UnknownCredential):
        webauthn_authentication_finish(
            user=user,
            ceremony_id=ceremony.id,
            response=other_authenticator.get(ceremony.options_json),
        )


def test_wrong_user_handle_is_refused_in_passwordless_sign_in() -> None:
    _, authenticator, _ = _registered()
    ceremony = webauthn_authentication_begin()
    with pytest.raises(UnknownCredential):
        webauthn_authentication_finish(
            ceremony_id=ceremony.id,
            response=authenticator.get(ceremony.options_json, user_handle=b"someone else"),
        )


def test_the_same_credential_cannot_be_registered_twice() -> None:
    user, authenticator, _ = _registered()
    ceremony = webauthn_registration_begin(user=user)
    with pytest.raises(InvalidResponse):
        webauthn_registration_finish(
            user=user,
            ceremony_id=ceremony.id,
            response=authenticator.create(ceremony.options_json),
            name="again",
        )


def _malformed_authentications(good: dict[str, Any]) -> list[Any]:
    response = good["response"]
    return [
        "",
        "not json",
        "[]",
        "null",
        json.dumps({"id": 1}),
        "x" * (MAX_RESPONSE_BYTES + 1),
        {**good, "response": {**response, "signature": "!!!"}},
        {**good, "response": {**response, "authenticatorData": b64url(b"short")}},
        {**good, "response": {**response, "clientDataJSON": b64url(b"{not json")}},
        {**good, "response": {**response, "clientDataJSON": b64url(b"[1, 2]")}},
        {**good, "response": {**response, "userHandle": 7}},
        {**good, "response": "nothing"},
        {**good, "type": "password"},
        {**good, "rawId": "@@@"},
        {**good, "padding": "y" * MAX_RESPONSE_BYTES},
        {"deep": json.loads("[" * 50 + "]" * 50)},
    ]


def test_malformed_or_oversized_authentication_is_a_clear_error() -> None:
    user, authenticator, _ = _registered()
    probe = webauthn_authentication_begin(user=user)
    good = authenticator.get(probe.options_json)
    for bad in _malformed_authentications(good):
        ceremony = webauthn_authentication_begin(user=user)
        with pytest.raises(MfaError) as raised:
            webauthn_authentication_finish(user=user, ceremony_id=ceremony.id, response=bad)
        assert isinstance(raised.value, MalformedInput | InvalidResponse | UnknownCredential), bad


def test_malformed_or_oversized_registration_is_a_clear_error() -> None:
    user = UserFactory()
    probe = webauthn_registration_begin(user=user)
    good = _authenticator().create(probe.options_json)
    response = good["response"]
    bad_inputs: list[Any] = [
        "{",
        "x" * (MAX_RESPONSE_BYTES + 1),
        {**good, "response": {**response, "attestationObject": b64url(b"\xff\x00garbage")}},
        {**good, "response": {**response, "attestationObject": b64url(b"")}},
        {**good, "response": {**response, "clientDataJSON": "%%%"}},
        {**good, "response": {**response, "transports": "usb"}},
        {**good, "id": "different"},
        {key: value for key, value in good.items() if key != "response"},
    ]
    for bad in bad_inputs:
        ceremony = webauthn_registration_begin(user=user)
        with pytest.raises(MfaError) as raised:
            webauthn_registration_finish(user=user, ceremony_id=ceremony.id, response=bad, name="x")
        assert isinstance(raised.value, MalformedInput | InvalidResponse), bad
    assert WebAuthnCredential.objects.count() == 0


@pytest.mark.parametrize("ceremony_id", ["", "nope", "x" * 10_000])
def test_unknown_ceremony_is_a_clear_error(ceremony_id: str) -> None:
    with pytest.raises(CeremonyExpired):
        webauthn_authentication_finish(ceremony_id=ceremony_id, response="{}")
