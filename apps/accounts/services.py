from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from apps.accounts.models import StaffRole, User
from apps.core.events import EventType, emit


def user_create(
    *, email: str, name: str = "", password: str | None = None, staff_role: str = ""
) -> User:
    """Create an account and record `user.created` in the same transaction.

    Without a password the account gets an unusable one (it signs in some other way). A
    `staff_role` (StaffRole) makes the person staff with that console role.
    Raises ValidationError for a malformed or taken email (in any case) or a weak password.
    """
    email = _normalize_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise _email_taken()
    if staff_role and staff_role not in StaffRole.values:
        raise ValidationError(
            f"The staff role must be one of {', '.join(StaffRole.values)}.", code="invalid"
        )
    user = User(email=email, name=name, is_staff=bool(staff_role), staff_role=staff_role)
    if password is None:
        user.set_unusable_password()
    else:
        validate_password(password, user=user)
        user.set_password(password)

    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: a racing sign-up loses cleanly
                user.save(force_insert=True)
        except IntegrityError as error:
            raise _email_taken() from error
        emit(
            EventType.USER_CREATED,
            user_id=user.id,
            resource_type="user",
            resource_id=user.id,
            metadata={"staff": bool(staff_role), "staff_role": staff_role},
        )
    return user


def _normalize_email(email: str) -> str:
    email = User.objects.normalize_email(email.strip()).lower()
    if not email:
        raise ValidationError("An email address is required.", code="required")
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(
            "“%(email)s” is not a valid email address.", code="invalid", params={"email": email}
        ) from None
    return email


def _email_taken() -> ValidationError:
    return ValidationError("An account with this email address already exists.", code="unique")
