from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from apps.core.federation import upstream_directory
from apps.core.security_headers import allow_continuation
from apps.sessions.selectors import session_current
from apps.signin import pipeline
from apps.signin.forms import LoginForm
from apps.signin.second_factor import step_up_begin


def _safe_next(request: HttpRequest) -> str:
    """Only our own pages (OWASP ASVS 5.1.5: no open redirect)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return "/console/" if request.user.is_staff else "/"


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    """The hosted sign-in page: the form, then the sign-in pipeline (apps.signin.pipeline).

    `?step_up=<acr>` from authorize (docs/architecture.md, "Authentication levels and
    step-up") with a live login session below that level: the missing factor of that
    session's person, not the password again (apps/signin/second_factor.py).

    Upstream providers (apps/federation, through the port apps.core.federation): one button
    each; an `idp_hint` naming one, or a `login_hint` in one's e-mail domains, sends the
    browser straight to it (Keycloak's kc_idp_hint; home-realm discovery)."""
    if request.method == "GET" and (wanted := pipeline.step_up_level(request)):
        session = session_current(request)
        if session is not None:
            if session.security_level >= wanted:
                return HttpResponseRedirect(_safe_next(request))
            return HttpResponseRedirect(
                step_up_begin(request, session=session, next_url=_safe_next(request), wanted=wanted)
            )
    directory = upstream_directory()
    if request.method == "GET" and (
        slug := directory.route(
            idp_hint=request.GET.get("idp_hint", ""), login_hint=request.GET.get("login_hint", "")
        )
    ):
        query = {"next": _safe_next(request)}
        if hint := request.GET.get("login_hint", "")[:254]:
            query["login_hint"] = hint
        start = reverse("federation:start", args=[slug])
        return HttpResponseRedirect(f"{start}?{urlencode(query)}")
    form = LoginForm(
        request.POST if request.method == "POST" else None,  # an empty POST is still a POST
        initial={"email": request.GET.get("login_hint", "")[:254]},
    )
    if request.method == "POST":
        if form.is_valid():
            outcome = pipeline.sign_in(
                request,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                next_url=_safe_next(request),
            )
        else:
            outcome = pipeline.refuse_malformed(email=str(form.data.get("email", "")))
        if isinstance(outcome, pipeline.Attempt):
            return HttpResponseRedirect(_safe_next(request))
        if isinstance(outcome, pipeline.Interaction):  # the second factor, on its page
            return HttpResponseRedirect(outcome.url)
        form.add_error(None, outcome.message)
        status, headers = outcome.status, outcome.headers
    else:
        status, headers = 200, {}
    # Signing in to prove an account is one's own before an upstream account is linked to it
    # (apps/federation): said on the page, and no provider buttons (they would start over).
    linking = _safe_next(request) == reverse("federation:link_confirm")
    context = {
        "form": form,
        "next": _safe_next(request),
        "providers": [] if linking else directory.buttons(),
        "linking": linking,
    }
    response = render(request, "signin/login.html", context, status=status)
    for name, value in headers.items():
        response[name] = value
    return allow_continuation(response, _safe_next(request))
