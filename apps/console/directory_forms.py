"""What the console's directory pages accept: each field bounded and parsed here; the rules
on names, slugs and permissions are the services' (apps.accounts.directory), whose messages
the pages show on the field they name (OWASP ASVS 5.1.3)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.db.models import QuerySet

from apps.accounts.directory import BULK_MAX_BYTES
from apps.accounts.models import Organization, Permission, PermissionScope, Role, User
from apps.sessions.selectors import user_lookup

_MALFORMED_PAGE = "This page link is malformed; start again from the first page."


class OrganizationSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Name or slug")
    after = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_after(self) -> str | None:
        """The last slug of the page before (organizations are paged by slug)."""
        text: str = self.cleaned_data["after"]
        if not text:
            return None
        if not re.fullmatch(r"[a-z0-9-]{1,63}", text):
            raise forms.ValidationError(_MALFORMED_PAGE, code="invalid")
        return text


# Names and slugs are checked by the services; the form only bounds what it reads.
def _text(label: str, *, max_length: int = 400, **kwargs: Any) -> forms.CharField:
    return forms.CharField(required=False, max_length=max_length, label=label, **kwargs)


class OrganizationForm(forms.Form):
    name = _text("Name")
    slug = _text("Slug", help_text="Lower-case letters, digits and hyphens; used in links.")


class WorkspaceForm(OrganizationForm):
    pass


class GroupForm(forms.Form):
    name = _text("Name")


class _PersonField(forms.EmailField):
    """An email address that must be an account's: cleans to the User."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=254, label="Email address", **kwargs)

    def clean(self, value: Any) -> User:
        email = super().clean(value)
        user = user_lookup(email=email)
        if user is None:
            raise forms.ValidationError(
                f"No account has the address {email}; the person must have an account first.",
                code="unknown",
            )
        return user


class _RoleField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Role) -> str:
        return obj.name if obj.organization_id else f"{obj.name} (built-in)"


def _role_field(roles: QuerySet[Role]) -> _RoleField:
    return _RoleField(
        queryset=roles,
        label="Role",
        empty_label=None,
        error_messages={"invalid_choice": "Choose one of the roles listed."},
    )


class MemberAddForm(forms.Form):
    """A person by email address, with one of `roles`."""

    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"] = _PersonField()
        self.fields["role"] = _role_field(roles)


class RoleChangeForm(forms.Form):
    def __init__(self, *args: Any, roles: QuerySet[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"] = _role_field(roles)


class GroupMemberAddForm(forms.Form):
    user = _PersonField()


class BulkMembersForm(forms.Form):
    """CSV lines `email,role[,workspace slug]`, typed or uploaded (UTF-8)."""

    csv = forms.CharField(
        required=False,
        max_length=2 * BULK_MAX_BYTES,  # bounded here; the service says when it is too long
        label="People, one per line: email,role or email,role,workspace-slug",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    file = forms.FileField(required=False, label="Or upload a CSV file")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        upload = cleaned.get("file")
        if upload is not None:
            if upload.size is not None and upload.size > BULK_MAX_BYTES:
                raise forms.ValidationError(
                    f"The file is over {BULK_MAX_BYTES // 1024} KB; split it into parts.",
                    code="too_large",
                )
            try:
                cleaned["csv"] = upload.read(BULK_MAX_BYTES + 1).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise forms.ValidationError(
                    "The file is not UTF-8 text; save it as CSV (UTF-8).", code="invalid"
                ) from None
        if not (cleaned.get("csv") or "").strip():
            raise forms.ValidationError("Type the list or choose a file.", code="required")
        return cleaned


class _PermissionChoices(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Permission) -> str:
        return str(obj)


class RoleForm(forms.Form):
    name = _text("Name")
    description = _text("Description", max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, with_organization: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if with_organization:
            self.fields["organization"] = forms.ModelChoiceField(
                queryset=Organization.objects.order_by("name"),
                required=False,
                empty_label="Built-in: available in every organization",
                label="Organization",
                error_messages={"invalid_choice": "Choose one of the organizations listed."},
            )
        self.fields["permissions"] = _PermissionChoices(
            queryset=Permission.objects.all(),
            required=False,
            label="Permissions",
            widget=forms.CheckboxSelectMultiple,
            error_messages={"invalid_choice": "Choose permissions from the list."},
        )


class PermissionForm(forms.Form):
    resource = _text("Resource", help_text="e.g. invoices")
    action = _text("Action", help_text="e.g. read")
    scope = forms.ChoiceField(
        choices=PermissionScope.choices,
        label="Scope",
        error_messages={"invalid_choice": "Choose one of the scopes listed."},
    )
