from __future__ import annotations

import datetime
import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from apps.accounts.signals import password_changed


class UserManager(DjangoUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("an email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, username: str | None) -> User:
        """Sign-in finds the account whatever case the email is typed in (emails are stored
        lower-cased and unique without regard to case). The comparison is the expression of
        the unique index on lower(email), so it is an index lookup; `email__iexact` compiles to
        UPPER(email) = UPPER(%s), which no index serves: a scan of every account per sign-in."""
        by_email = self.alias(email_lower=Lower("email"))
        return by_email.get(email_lower=Lower(models.Value(username or "")))

    def create_user(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra: Any
    ) -> User:
        extra.update(is_staff=True, is_superuser=True, staff_role=StaffRole.ADMINISTRATOR)
        return self._create_user(email, password, **extra)


class StaffRole(models.TextChoices):
    """What a staff member may do in the console and the admin API (OWASP ASVS 4.1.3, least
    privilege), each role including the ones before it: a viewer reads; an operator also acts
    on people (sessions, lockouts, memberships); an administrator also changes the system
    (clients, keys, roles, staff)."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMINISTRATOR = "administrator", "Administrator"

    @classmethod
    def rank(cls, role: str) -> int:
        """0 for no role, then 1, 2, 3 in the order above."""
        order = [member.value for member in cls]
        return order.index(role) + 1 if role in order else 0


# django-stubs cannot see the reverse manager of django-oauth-toolkit's untyped Client.user.
class MfaRequiredBy(models.TextChoices):
    """Who made a second factor mandatory for a person (User.mfa_required)."""

    OPERATOR = "operator", "An operator"
    THREAT = "threat", "A threat response"


class User(AbstractBaseUser, PermissionsMixin):  # type: ignore[django-manager-missing]
    """A person who signs in. The UUID is the stable `sub`; the email may change."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    # True once the person followed a verification link sent to `email` (OIDC Core §5.1
    # email_verified); a changed address is verified before it replaces this one.
    email_verified = models.BooleanField(default=False)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # The console role; set together with is_staff (the constraint below): staff have a role.
    staff_role = models.CharField(max_length=16, choices=StaffRole.choices, blank=True, default="")
    date_joined = models.DateTimeField(default=timezone.now)
    # This person must prove a second factor at every sign-in (issue 15), whatever the client
    # and the global setting ask; one without a factor enrols one at sign-in. Set through
    # apps.accounts.services.mfa_requirement_set, which records who set it and why.
    mfa_required = models.BooleanField(default=False)
    mfa_required_by = models.CharField(
        max_length=16, choices=MfaRequiredBy.choices, blank=True, default=""
    )
    # Blocked from signing in (issue 16): by an operator or a threat rule, until an operator
    # unblocks the person or `blocked_until` passes (apps.accounts.services.user_block).
    blocked_at = models.DateTimeField(null=True, blank=True)
    blocked_until = models.DateTimeField(null=True, blank=True)  # null: until unblocked
    blocked_by = models.CharField(max_length=16, choices=MfaRequiredBy.choices, blank=True)
    blocked_reason = models.CharField(max_length=200, blank=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["name"]

    class Meta:
        ordering = ("email",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            # Writers store emails lowercased; this makes "one account per address" hold even
            # for a row written another way.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_uniq"),
            models.CheckConstraint(
                condition=models.Q(is_staff=False, staff_role="")
                | (models.Q(is_staff=True) & ~models.Q(staff_role="")),
                name="accounts_user_staff_has_role",
                violation_error_message="Staff members have a console role, and only they do.",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Django keeps the new raw password in _password from set_password() until the save
        # (to tell the password validators), and clears it for a hash upgrade at sign-in.
        changed = getattr(self, "_password", None) is not None and not self._state.adding
        super().save(*args, **kwargs)
        if changed:
            password_changed.send(sender=User, user=self)

    def is_blocked(self, now: datetime.datetime | None = None) -> bool:
        """Blocked now: a block without an end, or whose end is still to come."""
        if self.blocked_at is None:
            return False
        return self.blocked_until is None or self.blocked_until > (now or timezone.now())

    def has_staff_role(self, role: str) -> bool:
        """Active staff whose role is `role` or above (StaffRole: viewer < operator <
        administrator)."""
        return (
            self.is_active
            and self.is_staff
            and StaffRole.rank(self.staff_role) >= StaffRole.rank(role) > 0
        )

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email


class Organization(models.Model):
    """A tenant: the top of the organization → workspace → group tree."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Every member must prove a second factor at sign-in (organization policy, issue 15).
    mfa_required = models.BooleanField(default=False)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Workspace(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="workspaces"
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("name",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["organization", "slug"], name="accounts_workspace_org_slug_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Group(models.Model):
    """A set of people inside one workspace (not django.contrib.auth's Group)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("name",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["workspace", "name"], name="accounts_group_workspace_name_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.name


class PermissionScope(models.TextChoices):
    """How far a permission reaches from the membership that grants it."""

    OWN = "own"
    WORKSPACE = "workspace"
    ORGANIZATION = "organization"
    GLOBAL = "global"


class Permission(models.Model):
    """One grant, `resource:action:scope`, as it appears in tokens (not auth's Permission)."""

    Scope = PermissionScope

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.CharField(max_length=100)
    action = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("resource", "action", "scope")
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["resource", "action", "scope"], name="accounts_permission_uniq"
            ),
            models.CheckConstraint(
                condition=models.Q(scope__in=PermissionScope.values),
                name="accounts_permission_scope_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}:{self.scope}"


class Role(models.Model):
    """A named set of permissions: an organization's own, or built-in (no organization)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="roles",
        help_text="Empty for a built-in role, available in every organization.",
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    permissions = models.ManyToManyField(Permission, related_name="roles", blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("name",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["organization", "name"], name="accounts_role_org_name_uniq"
            ),
            # NULLs are distinct in a unique index, so built-in names need their own rule.
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(organization__isnull=True),
                name="accounts_role_builtin_name_uniq",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def is_available_in(self, organization_id: uuid.UUID | None) -> bool:
        return self.organization_id is None or self.organization_id == organization_id


# A role defined by one organization must never grant anything in another.
_FOREIGN_ROLE = "This role belongs to another organization."


class OrganizationMembership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the unique (user, organization) index leads with user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="organization_memberships",
        db_index=False,
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    # RESTRICT, not PROTECT: a role in use cannot be deleted, except with its organization.
    role = models.ForeignKey(
        Role, on_delete=models.RESTRICT, related_name="organization_memberships"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("created_at",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["user", "organization"], name="accounts_org_membership_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"

    def clean(self) -> None:
        if self.role_id is not None and not self.role.is_available_in(self.organization_id):
            raise ValidationError({"role": _FOREIGN_ROLE}, code="foreign_role")


class WorkspaceMembership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the unique (user, workspace) index leads with user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="workspace_memberships",
        db_index=False,
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.ForeignKey(Role, on_delete=models.RESTRICT, related_name="workspace_memberships")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("created_at",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(
                fields=["user", "workspace"], name="accounts_workspace_membership_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.role}"

    def clean(self) -> None:
        if (
            self.role_id is not None
            and self.workspace_id is not None
            and not self.role.is_available_in(self.workspace.organization_id)
        ):
            raise ValidationError({"role": _FOREIGN_ROLE}, code="foreign_role")


class GroupMembership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the unique (user, group) index leads with user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="group_memberships",
        db_index=False,
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("created_at",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.UniqueConstraint(fields=["user", "group"], name="accounts_group_membership_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.group}"


class OrganizationInvitation(models.Model):
    """A link an operator hands out: whoever follows it (and, when `email` is set, only from
    that address) may register, or join with their existing account, and becomes a member of
    the organization with `role`. Only the SHA-256 of the link's token is kept (like a client
    secret's hash): the link is shown once, when it is created. Usable while not revoked,
    not expired and used fewer than `max_uses` times (apps/accounts/invitations.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    # RESTRICT as for memberships: a role in use by an invitation cannot be deleted.
    role = models.ForeignKey(Role, on_delete=models.RESTRICT, related_name="invitations")
    token_digest = models.CharField(max_length=64, unique=True)  # hex SHA-256 of the token
    email = models.EmailField(blank=True, default="")  # lower-cased; "" for anyone
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [  # noqa: RUF012 - Django reads Meta, nothing mutates it
            models.CheckConstraint(
                condition=models.Q(uses__lte=models.F("max_uses")),
                name="accounts_invitation_uses_within_max",
                violation_error_message="An invitation is used at most max_uses times.",
            ),
            models.CheckConstraint(
                condition=models.Q(max_uses__gte=1), name="accounts_invitation_max_uses_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"invitation to {self.organization} ({self.pk})"

    @property
    def state(self) -> str:
        """ "active", "revoked", "expired" or "used" (no uses left)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        if self.uses >= self.max_uses:
            return "used"
        return "active"
