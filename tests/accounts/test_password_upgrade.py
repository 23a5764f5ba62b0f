"""Older password hashes are upgraded to the OWASP argon2id parameters at the next login."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

from apps.accounts.models import User
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase"
# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
OWASP_ARGON2ID = ["argon2", "argon2id", "v=19", "m=19456,t=2,p=1"]


def hash_parameters(encoded: str) -> list[str]:
    """`argon2$argon2id$v=19$m=…,t=…,p=…$salt$hash` without its salt and hash."""
    return encoded.split("$")[:4]


@pytest.mark.parametrize(
    ("legacy_hasher", "legacy_prefix"),
    [
        ("pbkdf2_sha256", "pbkdf2_sha256$"),
        # Django's own argon2 defaults: m=100 MiB, p=8.
        (Argon2PasswordHasher(), "argon2$argon2id$v=19$m=102400,t=2,p=8$"),
    ],
    ids=["pbkdf2", "django-default-argon2"],
)
def test_successful_login_rehashes_a_legacy_hash_with_owasp_argon2id(
    legacy_hasher: str | Argon2PasswordHasher, legacy_prefix: str
) -> None:
    user = UserFactory(email="ada@example.com")
    User.objects.filter(id=user.id).update(password=make_password(PASSWORD, hasher=legacy_hasher))
    assert User.objects.get(id=user.id).password.startswith(legacy_prefix)

    assert authenticate(email="ada@example.com", password=PASSWORD) == user

    upgraded = User.objects.get(id=user.id).password
    assert hash_parameters(upgraded) == OWASP_ARGON2ID
    assert authenticate(email="ada@example.com", password=PASSWORD) == user


def test_failed_login_leaves_a_legacy_hash_alone() -> None:
    legacy = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user = UserFactory(email="ada@example.com")
    User.objects.filter(id=user.id).update(password=legacy)

    assert authenticate(email="ada@example.com", password="a wrong passphrase") is None

    assert User.objects.get(id=user.id).password == legacy


def test_new_passwords_are_hashed_with_owasp_argon2id() -> None:
    user = UserFactory(password=PASSWORD)

    assert hash_parameters(User.objects.get(id=user.id).password) == OWASP_ARGON2ID
