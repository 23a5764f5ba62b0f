"""Who may use the console: active staff only, checked on the server for every page (OWASP
ASVS 4.1.1, 4.1.3: access control enforced server-side, least privilege)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache

View = Callable[..., HttpResponseBase]  # a page, a redirect or a streamed download


def staff_required(view: View) -> View:
    """Anonymous visitors are sent to the sign-in page and back; a signed-in person who is
    not staff gets 403. Pages are never cached (ASVS 8.2.1: sensitive data)."""

    @wraps(view)
    @never_cache
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The console is for staff.")
        return view(request, *args, **kwargs)

    return guarded
