"""WebAuthn responses (WebAuthn L2 §7.1 registration, §7.2 authentication; apps.mfa.passkeys):
a software authenticator's valid answer (tests/mfa/authenticator.py) with its JSON members,
clientDataJSON, attestationObject (CBOR), authenticatorData, signature and userHandle bent
into every shape. The answer is an MfaError (MalformedInput, InvalidResponse, ...), recorded
as mfa.failed, or a credential; never another exception."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client as HttpClient
from hypothesis import event, example, given
from hypothesis import strategies as st
from webauthn.helpers import encode_cbor

from apps.mfa.errors import MfaError
from apps.mfa.passkeys import (
    webauthn_authentication_begin,
    webauthn_authentication_finish,
    webauthn_registration_begin,
    webauthn_registration_finish,
)
from tests.accounts.factories import UserFactory
from tests.fuzz import budget
from tests.fuzz.strategies import hostile_text, json_scalars, json_values, segments
from tests.mfa.authenticator import SoftAuthenticator, b64url, unb64url

ORIGIN = "https://id.example.com"

# CBOR holds what JSON holds, and bytes (which is what authData and COSE keys are)
cbor_values = st.recursive(
    st.one_of(json_scalars, st.binary(max_size=40)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-8, 8)), children, max_size=4),
    ),
    max_leaves=10,
)


@pytest.fixture(autouse=True)
def _issuer(settings: Any) -> None:
    settings.ISSUER = ORIGIN


def _authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, rp_id="id.example.com")


def _registered_authenticator(user: Any) -> SoftAuthenticator:
    """An authenticator whose key `user` has registered (a whole, valid ceremony)."""
    authenticator = _authenticator()
    ceremony = webauthn_registration_begin(user=user)
    webauthn_registration_finish(
        user=user, ceremony_id=ceremony.id,
        response=json.dumps(authenticator.create(ceremony.options_json)), name="Key",
    )  # fmt: skip
    return authenticator


@st.composite
def bent_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes changed, cut short, or grown."""
    changed = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if changed:
            changed[draw(st.integers(0, len(changed) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(changed))))
    return bytes(changed[:cut]) + draw(st.binary(max_size=6))


@st.composite
def bent_json_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """clientDataJSON with members replaced or dropped, or not JSON at all."""
    document = json.loads(data)
    for name in draw(st.sets(st.sampled_from(sorted(document)), max_size=2)):
        if draw(st.booleans()):
            document[name] = draw(json_values)
        else:
            del document[name]
    if draw(st.booleans()):
        return json.dumps(document).encode("utf-8", "surrogatepass")
    return draw(
        st.one_of(
            st.binary(max_size=40),
            json_values.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
        )
    )


@st.composite
def bent_attestation(draw: st.DrawFn, data: bytes) -> bytes:
    """The attestation object's CBOR map with members replaced (authData bent), or its bytes
    bent."""
    from webauthn.helpers import parse_cbor

    document = parse_cbor(data)
    choice = draw(st.sampled_from(["authData", "fmt", "attStmt", "bytes", "other"]))
    if choice == "authData":
        document["authData"] = draw(bent_bytes(document["authData"]))
    elif choice == "bytes":
        return draw(bent_bytes(data))
    elif choice == "other":
        return encode_cbor(draw(cbor_values))
    else:
        document[choice] = draw(cbor_values)
    return encode_cbor(document)


@st.composite
def bent_response(draw: st.DrawFn, response: dict[str, Any]) -> Any:
    """A response with one or two of its parts bent."""
    bent = copy.deepcopy(response)
    inner = bent["response"]
    parts = draw(st.sets(st.sampled_from(
        ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle",
         "transports", "id", "rawId", "type", "response", "clientExtensionResults", "document"]
    ), min_size=1, max_size=2))  # fmt: skip
    for part in sorted(parts):
        if part == "clientDataJSON":
            inner[part] = b64url(draw(bent_json_bytes(unb64url(inner[part]))))
        elif part == "attestationObject" and part in inner:
            inner[part] = b64url(draw(bent_attestation(unb64url(inner[part]))))
        elif part in ("authenticatorData", "signature", "userHandle") and part in inner:
            inner[part] = draw(st.one_of(
                st.builds(b64url, bent_bytes(unb64url(inner[part]))), segments, json_values
            ))  # fmt: skip
        elif part in ("transports", "id", "rawId", "type", "clientExtensionResults"):
            target = inner if part == "transports" else bent
            target[part] = draw(st.one_of(segments, json_values))
        elif part == "response":
            bent[part] = draw(json_values)
        elif part == "document":
            return draw(st.one_of(json_values, st.text(max_size=30)))
    return bent


@budget(30)
@given(data=st.data())
@example(data=None)
def test_registration_response_of_any_shape_is_a_credential_or_mfa_error(
    db: None, data: Any
) -> None:
    user = UserFactory()
    ceremony = webauthn_registration_begin(user=user)
    valid = _authenticator().create(ceremony.options_json)
    response = (
        data.draw(bent_response(valid))
        if data is not None
        else {**valid, "response": {**valid["response"], "attestationObject": b64url(b"\xbf")}}
    )
    as_text = data.draw(st.booleans()) if data is not None else True
    try:
        webauthn_registration_finish(
            user=user,
            ceremony_id=ceremony.id,
            response=json.dumps(response) if as_text else response,
            name="Key",
        )
    except MfaError as refusal:
        event(f"refused: {refusal.error_code}")
    else:
        event("accepted")


@budget(30)
@given(data=st.data(), passwordless=st.booleans())
def test_assertion_of_any_shape_is_accepted_or_mfa_error(
    db: None, data: Any, passwordless: bool
) -> None:
    user = UserFactory()
    authenticator = _registered_authenticator(user)
    ceremony = webauthn_authentication_begin(user=None if passwordless else user)
    response = data.draw(bent_response(authenticator.get(ceremony.options_json)))
    try:
        webauthn_authentication_finish(
            ceremony_id=ceremony.id,
            response=json.dumps(response) if data.draw(st.booleans()) else response,
            user=None if passwordless else user,
        )
    except MfaError as refusal:
        event(f"refused: {refusal.error_code}")
    else:
        event("accepted")


@budget(25)
@given(data=st.data())
def test_passwordless_sign_in_with_any_response_is_a_sign_in_or_a_400_page(
    db: None, fresh_redis: Callable[[], None], data: Any
) -> None:
    """The same through the hosted page (POST /login/passkey): the form's fields as a browser
    might send them, and the page never echoes what it was sent."""
    fresh_redis()
    user = UserFactory()
    authenticator = _registered_authenticator(user)
    http = HttpClient()
    options = http.post("/login/passkey/options", HTTP_ACCEPT="application/json").json()
    answer = data.draw(bent_response(authenticator.get(json.dumps(options["publicKey"]))))
    credential = json.dumps(answer)
    if data.draw(st.booleans()):  # with markup to see whether it comes back
        credential = credential.replace('"type"', '"<script>alert(1)</script>"', 1)
    form = {
        "ceremony": data.draw(st.one_of(st.just(options["ceremony"]), hostile_text)),
        "credential": data.draw(st.one_of(st.just(credential), hostile_text)),
    }
    response = http.post("/login/passkey", form)
    assert response.status_code in (302, 400, 429), response.status_code
    assert b"<script>alert(1)</script>" not in response.content
