"""Who may use the console and the admin API: active staff, by console role, checked on the
server for every page and endpoint (OWASP ASVS 4.1.1, 4.1.3: access control enforced
server-side, least privilege)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache
from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.accounts.models import StaffRole, User
from apps.core.errors import Refused

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_PERMISSION_CLASSES)
    from rest_framework.request import Request
    from rest_framework.views import APIView

View = Callable[..., HttpResponseBase]  # a page, a redirect or a streamed download


def role_required(role: str) -> Callable[[View], View]:
    """A page for active staff whose console role is `role` or above (StaffRole: viewer <
    operator < administrator). Anonymous visitors are sent to the sign-in page and back; a
    signed-in person without the role gets 403 saying which role the page needs. Pages are
    never cached (ASVS 8.2.1: sensitive data)."""

    def decorate(view: View) -> View:
        @wraps(view)
        @never_cache
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_staff_role(role):
                if not request.user.has_staff_role(StaffRole.VIEWER):
                    raise Refused("The console is for staff.")
                raise Refused(
                    f"This needs the {StaffRole(role).label.lower()} role; "
                    "an administrator can give it to you."
                )
            return view(request, *args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]  # tests walk the URLs
        return guarded

    return decorate


# Every staff member reads (viewer and above).
staff_required = role_required(StaffRole.VIEWER)
operator_required = role_required(StaffRole.OPERATOR)
administrator_required = role_required(StaffRole.ADMINISTRATOR)


class _HasRole(BasePermission):
    """The admin API's counterpart (DRF): the caller (session or bearer token) is active
    staff with `role` or above. Reads (GET, HEAD, OPTIONS) need only `read_role`."""

    role: str = StaffRole.ADMINISTRATOR
    read_role: str = StaffRole.VIEWER

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        needed = self.read_role if request.method in SAFE_METHODS else self.role
        allowed = bool(
            user
            and user.is_authenticated
            and isinstance(user, User)
            and user.has_staff_role(needed)
        )
        if not allowed:  # the 403's detail, as on the pages (DRF reads `message`)
            self.message = (
                f"This needs the {StaffRole(needed).label.lower()} role; "
                "an administrator can give it to you."
                if isinstance(user, User) and user.has_staff_role(StaffRole.VIEWER)
                else "The admin API is for staff."
            )
        return allowed


class StaffRead(_HasRole):
    """Viewers read; nothing else (an endpoint without writes)."""

    role = StaffRole.VIEWER


class OperatorWrites(_HasRole):
    """Viewers read; operators and administrators change (sessions, lockouts, memberships)."""

    role = StaffRole.OPERATOR


class AdministratorWrites(_HasRole):
    """Viewers read; administrators change (clients, keys, roles, staff)."""

    role = StaffRole.ADMINISTRATOR


class OperatorOnly(_HasRole):
    """Operators and administrators, reads included: a read that acts on a person (a GDPR
    export hands over everything held about them)."""

    role = read_role = StaffRole.OPERATOR


class AdministratorOnly(_HasRole):
    """Administrators, reads included: the API's default (settings.REST_FRAMEWORK), so an
    endpoint that names no class is closed to everyone else (ASVS 4.1.5: fail secure)."""

    role = read_role = StaffRole.ADMINISTRATOR
