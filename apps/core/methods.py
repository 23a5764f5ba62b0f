"""405 with Allow for a method the view does not take, answered before the CSRF check.

Django's CsrfViewMiddleware runs in process_view, before the view's own method check
(require_http_methods, a class-based view's dispatch), so a PUT, DELETE, PATCH or an unknown
method on a GET-only page was the CSRF 403 page: the wrong answer, and one that hides what
the resource does take. RFC 9110 §15.5.6: 405, with an Allow header (§10.2.1) listing the
methods the target resource supports.

The methods a view takes are read from what it declares: a class-based view's handlers
(View.http_method_names), or the list given to Django's require_http_methods (require_GET,
require_POST, require_safe). A view that declares neither, or is exempt from CSRF (it does its
own checks, as DRF's views do), is left to answer for itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from apps.core.views import error_response

# Methods CsrfViewMiddleware lets through (RFC 9110 §9.2.1 safe methods): the view answers.
_CSRF_FREE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _probe(request: HttpRequest) -> HttpResponse:
    raise AssertionError("never called")


async def _async_probe(request: HttpRequest) -> HttpResponse:
    raise AssertionError("never called")


# require_http_methods' wrapper functions (one code object each, whatever the list), by which
# a decorated view is known and its list found in the wrapper's closure.
_DECORATOR_CODES = frozenset(
    {
        require_http_methods(["GET"])(_probe).__code__,
        require_http_methods(["GET"])(_async_probe).__code__,
    }
)


def allowed_methods(view: Callable[..., Any]) -> list[str] | None:
    """The methods `view` declares it takes, or None when it does not say."""
    cls = getattr(view, "view_class", None)
    if cls is not None:
        allowed = [m.upper() for m in cls.http_method_names if hasattr(cls, m)]
        if "GET" in allowed and "HEAD" not in allowed:
            allowed.append("HEAD")  # View.setup answers HEAD with get
        return allowed
    func: Any = view
    for _ in range(32):  # decorators stack a few deep; a cycle is not followed for ever
        code = getattr(func, "__code__", None)
        if code in _DECORATOR_CODES and func.__closure__:
            cell = func.__closure__[code.co_freevars.index("request_method_list")]
            return [str(method) for method in cell.cell_contents]
        func = getattr(func, "__wrapped__", None)
        if func is None:
            return None
    return None


class MethodNotAllowedMiddleware:
    """Placed before CsrfViewMiddleware: its process_view runs first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        if request.method in _CSRF_FREE or getattr(view, "csrf_exempt", False):
            return None
        allowed = allowed_methods(view)
        if allowed is None or request.method in allowed:
            return None
        api = request.path.startswith(("/oauth/", "/api/"))
        response = error_response(request, 405, json=True if api else None)
        response["Allow"] = ", ".join(allowed)  # RFC 9110 §10.2.1
        return response
