"""Client authentication as it reaches the token endpoint (RFC 6749 §2.3.1, RFC 8705 §2):
HTTP Basic headers, client_id/client_secret form parameters and a trusted proxy's client
certificate header (nginx's URL-encoded PEM or RFC 9440 `:base64 DER:`), each of any shape.
A client that does not authenticate gets 401 invalid_client (RFC 6749 §5.2), a request that
is malformed 400; never a 5xx."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import pytest
from django.test import Client as HttpClient
from hypothesis import example, given
from hypothesis import strategies as st

from apps.core import client_cert
from apps.tokens import clients
from apps.tokens.services import client_create
from tests.fuzz import budget
from tests.fuzz.strategies import any_text, hostile_text
from tests.mtls import pki

TOKEN = "/oauth/token"
PROXY = "10.9.0.1"
CA = pki.certificate_authority()
LEAF = pki.leaf(CA, pki.name("svc"))
_OAUTH_ERRORS = {"invalid_client", "invalid_request", "unauthorized_client", "invalid_grant"}


@budget(250)
@given(authorization=st.one_of(any_text, st.builds(lambda v: "Basic " + v, any_text)))
@example(authorization="Basic " + base64.b64encode(b"\xff\xfe:x").decode())
@example(authorization="basic  " + base64.b64encode(b"id%00:%zz").decode())
def test_basic_credentials_of_anything_are_a_pair_or_none(authorization: str) -> None:
    found = clients.basic_credentials(authorization)
    assert found is None or all(isinstance(part, str) for part in found)


def _assert_refused(response: Any) -> None:
    assert response.status_code in (400, 401), (response.status_code, response.content[:300])
    assert response.json()["error"] in _OAUTH_ERRORS


_pair = st.tuples(hostile_text, hostile_text)
_basic = st.one_of(
    _pair.map(lambda p: "Basic " + base64.b64encode(f"{p[0]}:{p[1]}".encode()).decode()),
    st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    hostile_text.map(lambda v: "Basic " + v),
    hostile_text,
)


@budget(60)
@given(authorization=_basic, form=st.dictionaries(
    st.sampled_from(["client_id", "client_secret"]), hostile_text, max_size=2))  # fmt: skip
@example(authorization="Basic " + base64.b64encode(b"a\x00b:secret").decode(), form={})
@example(authorization="", form={"client_id": "a\x00b", "client_secret": "s"})
def test_token_endpoint_refuses_any_client_credentials_with_invalid_client(
    db: None, fresh_redis: Callable[[], None], rp: Any, authorization: str, form: dict[str, str]
) -> None:
    fresh_redis()
    data = {"grant_type": "client_credentials", **form}
    response = HttpClient().post(TOKEN, data, HTTP_AUTHORIZATION=authorization)
    _assert_refused(response)


@pytest.fixture
def client_ca(settings: Any, tmp_path: Any) -> None:
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(CA.pem)
    settings.MTLS_CLIENT_CA_FILE = ca_file
    settings.TRUSTED_PROXIES = (ipaddress.ip_network(f"{PROXY}/32"),)


@st.composite
def mutated_der(draw: st.DrawFn) -> bytes:
    """The leaf's DER with a few bytes changed, cut short, or grown."""
    der = bytearray(LEAF.der)
    for _ in range(draw(st.integers(0, 4))):
        der[draw(st.integers(0, len(der) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(der))))
    return bytes(der[:cut]) + draw(st.binary(max_size=8))


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


_cert_headers = st.one_of(
    mutated_der().map(lambda der: f":{base64.b64encode(der).decode()}:"),
    mutated_der().map(lambda der: quote(_pem(der))),
    hostile_text,
    hostile_text.map(lambda text: f":{text}:"),
)


@budget(75)
@given(header=_cert_headers, method=st.sampled_from(["tls", "self_signed"]))
@example(header=":" + base64.b64encode(LEAF.der[:-1]).decode() + ":", method="tls")
@example(header="%ZZ-----BEGIN CERTIFICATE-----", method="self_signed")
def test_any_client_certificate_header_is_a_certificate_or_invalid_client(
    db: None, fresh_redis: Callable[[], None], client_ca: None, header: str, method: str
) -> None:
    fresh_redis()
    if method == "tls":
        client, _ = client_create(
            name="svc", redirect_uris=[], grant_types=["client_credentials"],
            token_endpoint_auth_method="tls_client_auth", tls_client_auth_san_dns="svc.example",
        )  # fmt: skip
    else:
        client, _ = client_create(
            name="svc", redirect_uris=[], grant_types=["client_credentials"],
            token_endpoint_auth_method="self_signed_tls_client_auth", jwks=LEAF.jwks(),
        )  # fmt: skip
    response = HttpClient().post(
        TOKEN,
        {"grant_type": "client_credentials", "client_id": client.client_id},
        REMOTE_ADDR=PROXY,
        HTTP_X_CLIENT_CERT=header,
    )
    if response.status_code == 200:  # a few changes leave the DER as it was, or equivalent
        presented = _presented(header)
        assert presented is not None
        assert client_cert.thumbprint(presented) == LEAF.thumbprint
    else:
        _assert_refused(response)


def _presented(header: str) -> Any:
    if header.startswith(":") and header.endswith(":"):
        return client_cert._load_rfc9440(header[1:-1])
    return client_cert._load_pem(unquote(header))


@budget(150)
@given(pem=st.one_of(mutated_der().map(_pem), any_text), encoded=st.one_of(mutated_der().map(
    lambda der: base64.b64encode(der).decode()), any_text))  # fmt: skip
def test_certificate_loaders_return_a_certificate_or_none(pem: str, encoded: str) -> None:
    for loaded in (client_cert._load_pem(pem), client_cert._load_rfc9440(encoded)):
        if loaded is not None:
            assert client_cert.thumbprint(loaded)
