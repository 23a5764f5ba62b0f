"""The custom user model: UUID subject, unique email, argon2id passwords."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError

from apps.accounts.models import User

pytestmark = pytest.mark.django_db


def test_user_has_a_uuid_id_and_a_normalized_email() -> None:
    user = User.objects.create_user(
        email="Ada@Example.COM", password="a long passphrase", name="Ada"
    )

    assert isinstance(user.id, uuid.UUID)
    assert user.email == "ada@example.com"
    assert user.get_short_name() == "Ada"


def test_email_is_unique_whatever_its_case() -> None:
    User.objects.create_user(email="ada@example.com")

    with pytest.raises(IntegrityError):
        User.objects.create_user(email="ADA@example.com")


def test_password_is_stored_with_argon2id() -> None:
    # OWASP Password Storage Cheat Sheet: argon2id is the first choice.
    user = User.objects.create_user(email="ada@example.com", password="a long passphrase")

    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password("a long passphrase")
    assert not user.check_password("a wrong passphrase")


def test_user_without_password_cannot_sign_in_with_one() -> None:
    user = User.objects.create_user(email="fed@example.com")

    assert not user.has_usable_password()
    assert not user.check_password("")
