"""user_create(): the one way an account comes to exist, with its user.created event."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent


@pytest.mark.django_db
def test_user_create_stores_a_normalized_email_and_an_argon2id_password() -> None:
    user = user_create(email="  Ada@Example.COM ", name="Ada", password="a long passphrase")

    stored = User.objects.get(id=user.id)
    assert stored.email == "ada@example.com"
    assert stored.name == "Ada"
    assert stored.password.startswith("argon2$argon2id$")
    assert stored.check_password("a long passphrase")
    assert not stored.is_staff
    assert not stored.is_superuser


@pytest.mark.django_db
def test_user_create_records_a_user_created_event_about_the_new_user() -> None:
    user = user_create(email="ada@example.com", password="a long passphrase")

    event = SecurityEvent.objects.get()
    assert event.event_type == "user.created"
    assert event.user_id == str(user.id)
    assert event.resource_type == "user"
    assert event.resource_id == str(user.id)
    assert event.metadata == {"staff": False, "staff_role": ""}


@pytest.mark.django_db
def test_user_created_without_a_password_cannot_sign_in_with_one() -> None:
    user = user_create(email="federated@example.com")

    assert not User.objects.get(id=user.id).has_usable_password()


@pytest.mark.django_db
def test_staff_user_is_staff_but_not_superuser_and_the_event_says_so() -> None:
    user = user_create(
        email="operator@example.com", password="a long passphrase", staff_role="administrator"
    )

    stored = User.objects.get(id=user.id)
    assert stored.is_staff
    assert not stored.is_superuser
    assert stored.staff_role == "administrator"
    assert stored.has_staff_role("operator")
    assert SecurityEvent.objects.get().metadata == {"staff": True, "staff_role": "administrator"}


@pytest.mark.django_db
def test_staff_roles_include_the_ones_below_and_only_staff_have_one() -> None:
    viewer = user_create(email="viewer@example.com", staff_role="viewer")
    assert viewer.has_staff_role("viewer")
    assert not viewer.has_staff_role("operator")
    assert not user_create(email="nobody@example.com").has_staff_role("viewer")
    viewer.is_active = False
    assert not viewer.has_staff_role("viewer")
    with pytest.raises(ValidationError, match="staff role must be one of"):
        user_create(email="x@example.com", staff_role="root")
    viewer.staff_role = ""
    with pytest.raises(IntegrityError):  # staff without a role: the database refuses it
        viewer.save()


@pytest.mark.django_db(transaction=True)
def test_user_and_event_commit_together() -> None:
    user = user_create(email="ada@example.com", password="a long passphrase")

    assert User.objects.filter(id=user.id).exists()
    assert SecurityEvent.objects.filter(resource_id=str(user.id)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_user_and_event_roll_back_together_when_the_surrounding_transaction_fails() -> None:
    class SignUpFailed(Exception):
        pass

    @transaction.atomic
    def failing_sign_up() -> None:
        user_create(email="ada@example.com", password="a long passphrase")
        raise SignUpFailed

    with pytest.raises(SignUpFailed):
        failing_sign_up()

    assert not User.objects.exists()
    assert not SecurityEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "again", ["ada@example.com", "ADA@EXAMPLE.COM", " Ada@Example.com", "ada@EXAMPLE.com"]
)
def test_second_account_for_the_same_email_in_any_case_is_refused(again: str) -> None:
    user_create(email="ada@example.com", password="a long passphrase")

    with pytest.raises(ValidationError) as error:
        user_create(email=again, password="another long passphrase")

    assert error.value.messages == ["An account with this email address already exists."]
    assert User.objects.count() == 1
    assert SecurityEvent.objects.count() == 1


@pytest.mark.django_db
def test_existing_mixed_case_email_still_counts_as_taken() -> None:
    User(email="Ada@Example.com").save()  # written without the lowercasing

    with pytest.raises(ValidationError, match="already exists"):
        user_create(email="ada@example.com")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("not-an-email", "“not-an-email” is not a valid email address."),
        ("ada@", "“ada@” is not a valid email address."),
        ("ada@example..com", "“ada@example..com” is not a valid email address."),
        ("ada lovelace@example.com", "“ada lovelace@example.com” is not a valid email address."),
        ("   ", "An email address is required."),
    ],
)
def test_malformed_email_is_refused_with_a_clear_message(email: str, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        user_create(email=email, password="a long passphrase")

    assert error.value.messages == [message]
    assert not User.objects.exists()
    assert not SecurityEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "Use at least 12 characters"),
        ("password1234", "known to attackers"),
        ("ada.lovelace", "too close to your email"),
    ],
)
def test_weak_password_is_refused_with_the_validators_reason(password: str, reason: str) -> None:
    with pytest.raises(ValidationError) as error:
        user_create(email="ada.lovelace@example.com", password=password)

    assert any(reason in message for message in error.value.messages)
    assert not User.objects.exists()
    assert not SecurityEvent.objects.exists()
