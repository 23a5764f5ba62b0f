"""Organization invitations: a link an operator hands out, through which people register (or
join with the account they have) and become members of the organization.

The link carries a random token (256 bits, `secrets.token_urlsafe`); only its SHA-256 is
stored, so the table alone opens nothing (OWASP ASVS 4.0.3 2.5.2 and 3.5.x: no secret kept in
clear; a high-entropy token needs no slow hash). The token is returned once, when the
invitation is created. An invitation is usable while it is not revoked, not expired and used
fewer than `max_uses` times; when `email` is set, only that address may use it. Every change
records `invitation.changed` (action created, revoked or used) in the same transaction, with
the operator (or, for a use, the person) as actor_id.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.directory import organization_membership_add
from apps.accounts.models import (
    Organization,
    OrganizationInvitation,
    OrganizationMembership,
    Role,
    User,
)
from apps.accounts.services import normalize_email
from apps.core.events import EventType, emit

# A token longer than this is not one of ours (ours are 43 characters).
TOKEN_MAX = 100
MAX_USES_LIMIT = 10_000
DAYS_LIMIT = 90

# What a person is told when an invitation cannot be used, by InvitationUnusable.code.
UNUSABLE = {
    "unknown": "This invitation link is not valid. Check that you copied all of it, or ask for "
    "a new one.",
    "revoked": "This invitation was withdrawn. Ask the person who sent it for a new one.",
    "expired": "This invitation has expired. Ask the person who sent it for a new one.",
    "used": "This invitation has been used as many times as it allows. Ask the person who "
    "sent it for a new one.",
    "address": "This invitation is for another e-mail address.",
    "member": "You are already a member of this organization.",
}


class InvitationUnusable(ValidationError):
    """The invitation cannot be used (code: a key of UNUSABLE)."""

    def __init__(self, code: str) -> None:
        super().__init__(UNUSABLE[code], code=code)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _view(invitation: OrganizationInvitation) -> dict[str, object]:
    return {
        "organization": str(invitation.organization_id),
        "role": str(invitation.role_id),
        "email": invitation.email,
        "expires_at": invitation.expires_at.isoformat(),
        "max_uses": invitation.max_uses,
        "uses": invitation.uses,
    }


def _record(
    invitation: OrganizationInvitation, *, action: str, actor_id: object, **extra: object
) -> None:
    emit(
        EventType.INVITATION_CHANGED,
        user_id=extra.pop("user_id", None),
        actor_id=actor_id,
        resource_type="accounts.organizationinvitation",
        resource_id=invitation.pk,
        action=action,
        metadata={**_view(invitation), **extra},
    )


def invitation_create(
    *,
    organization: Organization,
    role: Role,
    actor_id: uuid.UUID | str | None,
    email: str = "",
    max_uses: int = 1,
    days: int | None = None,
) -> tuple[OrganizationInvitation, str]:
    """A new invitation to `organization` giving `role`, and its token (shown once: only its
    digest is kept). `email` restricts it to one address; it expires after `days`
    (INVITATION_DAYS by default, at most DAYS_LIMIT) or `max_uses` uses."""
    errors: dict[str, str] = {}
    if not role.is_available_in(organization.pk):
        errors["role"] = (
            f"The role “{role.name}” belongs to another organization; choose a built-in role "
            f"or one of “{organization.name}”'s own."
        )
    if email:
        try:
            email = normalize_email(email)
        except ValidationError as error:
            errors["email"] = error.messages[0]
    if not 1 <= max_uses <= MAX_USES_LIMIT:
        errors["max_uses"] = f"Allow from 1 to {MAX_USES_LIMIT} uses."
    days = settings.INVITATION_DAYS if days is None else days
    if not 1 <= days <= DAYS_LIMIT:
        errors["days"] = f"Choose from 1 to {DAYS_LIMIT} days."
    if email and max_uses != 1 and "max_uses" not in errors:
        errors["max_uses"] = "An invitation for one address is used once."
    if errors:
        raise ValidationError(errors, code="invalid")
    token = secrets.token_urlsafe(32)
    invitation = OrganizationInvitation(
        organization=organization,
        role=role,
        token_digest=token_digest(token),
        email=email,
        created_by_id=actor_id,
        expires_at=timezone.now() + timedelta(days=days),
        max_uses=max_uses,
    )
    with transaction.atomic():
        invitation.save(force_insert=True)
        _record(invitation, action="created", actor_id=actor_id)
    return invitation, token


def invitation_revoke(*, invitation: OrganizationInvitation, actor_id: object) -> bool:
    """Withdraw the invitation: its link stops working at once. False when it already was."""
    with transaction.atomic():
        locked = OrganizationInvitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.revoked_at is not None:
            return False
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        _record(locked, action="revoked", actor_id=actor_id)
    invitation.revoked_at = locked.revoked_at
    return True


def invitation_url(token: str) -> str:
    """The link a token makes: the hosted invitation page (apps/signin/registration.py)."""
    return settings.ISSUER + reverse("signin:invite", args=[token])


def invitation_for_token(token: str) -> OrganizationInvitation:
    """The invitation a link's token names, whatever its state (check it with
    invitation_check). Raises InvitationUnusable("unknown")."""
    if not token or len(token) > TOKEN_MAX:
        raise InvitationUnusable("unknown")
    try:
        return OrganizationInvitation.objects.select_related("organization", "role").get(
            token_digest=token_digest(token)
        )
    except OrganizationInvitation.DoesNotExist:
        raise InvitationUnusable("unknown") from None


def invitation_check(invitation: OrganizationInvitation, *, email: str | None = None) -> None:
    """Raises InvitationUnusable when the invitation cannot be used now (by `email`, when
    given: an invitation for one address refuses every other)."""
    state = invitation.state
    if state != "active":
        raise InvitationUnusable(state)
    if email is not None and invitation.email and invitation.email != email.strip().lower():
        raise InvitationUnusable("address")


def invitation_use(*, invitation_id: uuid.UUID | str, user: User) -> OrganizationMembership:
    """Make `user` a member of the invitation's organization with its role, counting one use,
    all in one transaction with the invitation's row locked: two people racing for the last
    use of an invitation cannot both get in. The person is the actor. Raises
    InvitationUnusable (the membership then is not made)."""
    with transaction.atomic():
        try:
            invitation = (
                OrganizationInvitation.objects.select_for_update()
                .select_related("organization", "role")
                .get(pk=invitation_id)
            )
        except OrganizationInvitation.DoesNotExist:
            raise InvitationUnusable("unknown") from None
        invitation_check(invitation, email=user.email)
        if OrganizationMembership.objects.filter(
            user=user, organization_id=invitation.organization_id
        ).exists():
            raise InvitationUnusable("member")
        membership = organization_membership_add(
            organization=invitation.organization,
            user=user,
            role=invitation.role,
            actor_id=user.pk,
        )
        invitation.uses += 1
        invitation.save(update_fields=["uses"])
        _record(invitation, action="used", actor_id=user.pk, user_id=user.pk)
    return membership


def invitation_list(*, organization: Organization) -> list[OrganizationInvitation]:
    return list(
        OrganizationInvitation.objects.filter(organization=organization).select_related(
            "role", "created_by"
        )
    )
