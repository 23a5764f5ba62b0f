"""Client registration: `manage.py createclient` and the service behind it."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import CommandError, call_command

from apps.core.models import SecurityEvent
from apps.tokens.models import Client

pytestmark = pytest.mark.django_db


def _create(*args: str) -> str:
    out = StringIO()
    call_command("createclient", *args, stdout=out)
    return out.getvalue()


def test_createclient_prints_json_with_a_256_bit_secret_stored_only_as_a_keyed_hash() -> None:
    printed = json.loads(
        _create("--name", "Web", "--redirect-uri", "https://app.example.com/cb", "--json")
    )

    client = Client.objects.get(client_id=printed["client_id"])
    assert len(printed["client_secret"]) >= 43  # 32 random bytes, base64url
    assert client.client_secret.startswith("hmac_sha256$")
    assert printed["client_secret"] not in client.client_secret
    assert check_password(printed["client_secret"], client.client_secret)
    assert not check_password(printed["client_secret"] + "x", client.client_secret)
    assert client.grant_type_set == {"authorization_code", "refresh_token"}
    assert client.client_type == Client.CLIENT_CONFIDENTIAL
    assert SecurityEvent.objects.filter(
        event_type="client.created", resource_id=client.client_id
    ).exists()


def test_createclient_takes_every_documented_option() -> None:
    printed = json.loads(
        _create(
            "--name",
            "SPA",
            "--redirect-uri",
            "https://spa.example.com/cb",
            "--redirect-uri",
            "https://spa.example.com/cb2",
            "--post-logout-redirect-uri",
            "https://spa.example.com/bye",
            "--grant",
            "authorization_code",
            "--public",
            "--skip-consent",
            "--client-id",
            "spa-client",
            "--id-token-alg",
            "ES256",
            "--json",
        )
    )

    client = Client.objects.get(client_id="spa-client")
    assert printed == {"client_id": "spa-client", "client_secret": None}
    assert client.client_type == Client.CLIENT_PUBLIC
    assert client.redirect_uris.split() == [
        "https://spa.example.com/cb",
        "https://spa.example.com/cb2",
    ]
    assert client.post_logout_redirect_uris == "https://spa.example.com/bye"
    assert client.skip_authorization is True
    assert client.grant_type_set == {"authorization_code"}
    assert client.id_token_signed_response_alg == "ES256"


def test_a_supplied_secret_is_kept_for_migrations_from_another_idp() -> None:
    secret = "s" * 40
    _create(
        "--name",
        "Old",
        "--grant",
        "client_credentials",
        "--client-id",
        "old",
        "--client-secret",
        secret,
    )

    assert check_password(secret, Client.objects.get(client_id="old").client_secret)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redirect-uri", "https://a.example.com/cb#frag"], "fragment"),
        (["--redirect-uri", "ftp://a.example.com/cb"], "redirect"),
        (
            ["--grant", "refresh_token", "--redirect-uri", "https://a.example.com/cb"],
            "authorization_code or client_credentials",
        ),
        (
            ["--grant", "client_credentials", "--public"],
            "public client cannot use client_credentials",
        ),
        (["--grant", "authorization_code"], "needs at least one --redirect-uri"),
        (["--grant", "client_credentials", "--client-secret", "short"], "at least 32 characters"),
    ],
)
def test_createclient_refuses_bad_registrations_with_a_clear_message(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        _create("--name", "Bad", *args)
    assert not Client.objects.exists()


def test_createclient_refuses_a_taken_client_id() -> None:
    _create("--name", "A", "--grant", "client_credentials", "--client-id", "dup")

    with pytest.raises(CommandError, match="already exists"):
        _create("--name", "B", "--grant", "client_credentials", "--client-id", "dup")
