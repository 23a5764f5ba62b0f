from __future__ import annotations

import datetime

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import (
    MfaRequiredBy,
    Organization,
    OrganizationMembership,
    StaffRole,
    User,
)
from apps.core.events import EventType, emit


def user_create(
    *,
    email: str,
    name: str = "",
    password: str | None = None,
    staff_role: str = "",
    password_hash: str | None = None,
    email_verified: bool = False,
    metadata: dict[str, object] | None = None,
) -> User:
    """Create an account and record `user.created` in the same transaction.

    Without a password the account gets an unusable one (it signs in some other way). A
    `staff_role` (StaffRole) makes the person staff with that console role.
    `password_hash` is a password already checked by the policy and hashed (registration
    keeps only the hash while the address is verified); `email_verified` says the address was
    proven; `metadata` joins the event's (e.g. how the account came to be).
    Raises ValidationError for a malformed or taken email (in any case) or a weak password.
    """
    email = _normalize_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise _email_taken()
    if staff_role and staff_role not in StaffRole.values:
        raise ValidationError(
            f"The staff role must be one of {', '.join(StaffRole.values)}.", code="invalid"
        )
    user = User(
        email=email,
        name=name,
        is_staff=bool(staff_role),
        staff_role=staff_role,
        email_verified=email_verified,
    )
    if password_hash is not None:
        user.password = password_hash
    elif password is None:
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
            metadata={"staff": bool(staff_role), "staff_role": staff_role, **(metadata or {})},
        )
    return user


class LastAdministrator(ValidationError):
    """The change would leave no active administrator: nobody could manage staff any more."""


def staff_role_set(*, user: User, role: str, actor_id: object) -> bool:
    """Give `user` the console role `role` (StaffRole), making them staff, or with "" end
    their staff access; record `user.changed` (before and after, `actor_id` the
    administrator, None from the command line) in the same transaction. False when the role
    was already that (nothing recorded).

    Raises ValidationError for an unknown role, LastAdministrator when `user` is the last
    active administrator and would stop being one. The active administrators' rows are
    locked first (ordered by id), so two administrators demoting each other at once cannot
    both succeed: one of them waits and then sees it is the last.
    """
    if role and role not in StaffRole.values:
        raise ValidationError(
            f"The staff role must be one of {', '.join(StaffRole.values)}.", code="invalid"
        )
    with transaction.atomic():
        administrators = list(
            User.objects.select_for_update()
            .filter(is_active=True, is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        locked = User.objects.select_for_update().get(pk=user.pk)
        before = locked.staff_role
        if before == role:
            return False
        if locked.pk in administrators and len(administrators) == 1:
            raise LastAdministrator(
                f"{locked.email} is the last administrator: make someone else administrator "
                "first, or nobody could manage staff any more.",
                code="last_administrator",
            )
        locked.staff_role = role
        locked.is_staff = bool(role)
        # Django's superuser flag means every permission; it goes with the administrator role.
        locked.is_superuser = locked.is_superuser and role == StaffRole.ADMINISTRATOR
        locked.save(update_fields=["staff_role", "is_staff", "is_superuser"])
        emit(
            EventType.USER_CHANGED,
            user_id=locked.pk,
            actor_id=actor_id,
            resource_type="user",
            resource_id=locked.pk,
            action="staff_role_changed",
            metadata={"staff_role_before": before, "staff_role_after": role},
        )
    user.staff_role, user.is_staff = locked.staff_role, locked.is_staff
    user.is_superuser = locked.is_superuser
    return True


def mfa_requirement_set(*, user: User, required: bool, actor_id: object, source: str) -> bool:
    """Make a second factor mandatory for `user` at every sign-in, or stop requiring it
    (NIST SP 800-63B §4.2: AAL2 needs two factors). `source` says who decided (MfaRequiredBy:
    an operator, a threat response); records `user.changed` with the actor (None for a rule
    or the command line). False when nothing changed. Lifting it leaves the person's factors
    enrolled: a person who has one is still asked for it at sign-in."""
    if source not in MfaRequiredBy.values:
        raise ValidationError(
            f"The source must be one of {', '.join(MfaRequiredBy.values)}.", code="invalid"
        )
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.mfa_required == required:
            return False
        locked.mfa_required = required
        locked.mfa_required_by = source if required else ""
        locked.save(update_fields=["mfa_required", "mfa_required_by"])
        emit(
            EventType.USER_CHANGED,
            user_id=locked.pk,
            actor_id=actor_id,
            resource_type="user",
            resource_id=locked.pk,
            action="mfa_required_changed",
            metadata={"mfa_required": required, "source": source},
        )
    user.mfa_required, user.mfa_required_by = locked.mfa_required, locked.mfa_required_by
    return True


def user_block(
    *,
    user: User,
    actor_id: object,
    source: str,
    reason: str,
    until: datetime.datetime | None = None,
    rule: str = "",
) -> bool:
    """Refuse every sign-in of `user` (the `not_blocked` step of apps/signin/pipeline.py)
    until an operator unblocks them or `until` passes (None: until unblocked). `source` says
    who decided (an operator, a threat rule: MfaRequiredBy); records `user.blocked`. Ending
    the person's sessions is the caller's choice (a threat rule's response does it). A person
    already blocked keeps the later of the two ends. False when nothing changed."""
    if source not in MfaRequiredBy.values:
        raise ValidationError(
            f"The source must be one of {', '.join(MfaRequiredBy.values)}.", code="invalid"
        )
    now = timezone.now()
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_blocked(now) and (
            locked.blocked_until is None or (until is not None and until <= locked.blocked_until)
        ):
            return False
        locked.blocked_at = now
        locked.blocked_until = until
        locked.blocked_by = source
        locked.blocked_reason = reason[:200]
        locked.save(update_fields=_BLOCK_FIELDS)
        emit(
            EventType.USER_BLOCKED,
            user_id=locked.pk,
            actor_id=actor_id,
            resource_type="user",
            resource_id=locked.pk,
            metadata={
                "source": source,
                "reason": locked.blocked_reason,
                "rule": rule,
                "until": until.isoformat() if until else None,
            },
        )
    _copy_block(locked, user)
    return True


def user_unblock(*, user: User, actor_id: object, reason: str = "") -> bool:
    """Lift a block (an operator, with `actor_id`; or the block's time passed, actor None);
    records `user.unblocked`. False when the person was not blocked."""
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.blocked_at is None:
            return False
        metadata = {
            "source": locked.blocked_by,
            "blocked_reason": locked.blocked_reason,
            "blocked_at": locked.blocked_at.isoformat(),
            "reason": reason[:200] or ("expired" if actor_id is None else "operator"),
        }
        locked.blocked_at = locked.blocked_until = None
        locked.blocked_by = locked.blocked_reason = ""
        locked.save(update_fields=_BLOCK_FIELDS)
        emit(
            EventType.USER_UNBLOCKED,
            user_id=locked.pk,
            actor_id=actor_id,
            resource_type="user",
            resource_id=locked.pk,
            metadata=metadata,
        )
    _copy_block(locked, user)
    return True


_BLOCK_FIELDS = ["blocked_at", "blocked_until", "blocked_by", "blocked_reason"]


def _copy_block(source: User, target: User) -> None:
    for name in _BLOCK_FIELDS:
        setattr(target, name, getattr(source, name))


def mfa_required_by_policy(user: User) -> bool:
    """Whether the person or one of their organizations requires a second factor (one
    query when the person's own flag is off; none when it is on)."""
    if user.mfa_required:
        return True
    return OrganizationMembership.objects.filter(
        user_id=user.pk, organization__mfa_required=True
    ).exists()


def organization_mfa_policy_set(
    *, organization: Organization, required: bool, actor_id: object
) -> bool:
    """Every member of `organization` must prove a second factor at sign-in (or no longer
    must); records `permission.changed` (before/after) with the actor. False when unchanged."""
    with transaction.atomic():
        updated = (
            Organization.objects.filter(pk=organization.pk)
            .exclude(mfa_required=required)
            .update(mfa_required=required)
        )
        if not updated:
            return False
        emit(
            EventType.PERMISSION_CHANGED,
            actor_id=actor_id,
            resource_type="accounts.organization",
            resource_id=organization.pk,
            action="mfa_policy_changed",
            metadata={
                "before": {"mfa_required": not required},
                "after": {"mfa_required": required},
            },
        )
    organization.mfa_required = required
    return True


def normalize_email(email: str) -> str:
    """The address as accounts store it (trimmed, lower-cased), or ValidationError."""
    return _normalize_email(email)


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
