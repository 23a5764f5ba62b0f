"""/admin/, Django's admin, for administrators only (issue 13: "reachable by administrators
through the hosted login").

Kept rather than removed: it still edits what the console has no page for yet (accounts'
profile and status, organizations, workspaces, groups, roles, permissions and memberships,
consents). Administrators, and only they, may use it, because each of those is an
administrator's change (StaffRole); they sign in on the hosted /login (/admin/login/ redirects
there, idp/urls.py), with its limits and checks. Its changes are recorded as security events
(apps/core/receivers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.admin import AdminSite
from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from apps.accounts.models import StaffRole, User
from apps.core.errors import Refused

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


def _administrator(user: object) -> bool:
    return isinstance(user, User) and user.has_staff_role(StaffRole.ADMINISTRATOR)


class AdministratorsAdminSite(AdminSite):
    site_header = "Tessera admin"
    site_title = "Tessera admin"

    def has_permission(self, request: HttpRequest) -> bool:
        """Active administrators only (OWASP ASVS 4.1.3, least privilege): Django's default
        lets in any active staff member."""
        return _administrator(request.user)

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        """A signed-in person who is not an administrator gets 403 saying so; Django would
        send them to the sign-in page, which would send them straight back."""
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.user.is_authenticated and not _administrator(request.user):
                raise Refused(
                    "The Django admin is for administrators; an administrator can give you "
                    "the role."
                )
            return inner(request, *args, **kwargs)

        return cast("_View", guarded)


class AdministratorPermissions(BaseBackend):
    """Every model permission, to active administrators: the admin's pages and actions check
    Django permissions, which the console's roles replace (settings.AUTHENTICATION_BACKENDS,
    after ModelBackend; it authenticates no one). Without it an administrator saw "You don't
    have permission to view or edit anything"."""

    def has_perm(self, user_obj: Any, perm: str, obj: object = None) -> bool:
        return _administrator(user_obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return _administrator(user_obj)
