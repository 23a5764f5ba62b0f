from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from apps.accounts.forms import LoginForm
from apps.accounts.selectors import user_id_for_email
from apps.core.errors import LoginRefused
from apps.core.events import EventType, emit

WRONG_CREDENTIALS = "Email or password is incorrect."


@never_cache
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    """Where a person lands after signing in directly: who they are, and the way out."""
    return render(request, "accounts/home.html")


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
    """The hosted sign-in page. Django's login() rotates the session key (session fixation,
    OWASP ASVS 3.2.1) and signals the sessions app, which opens the login session."""
    next_url = _safe_next(request)
    form = LoginForm(
        request.POST if request.method == "POST" else None,  # an empty POST is still a POST
        initial={"email": request.GET.get("login_hint", "")[:254]},
    )
    if request.method == "POST":
        if form.is_valid():
            user = authenticate(
                request, email=form.cleaned_data["email"], password=form.cleaned_data["password"]
            )
            if user is not None:
                try:
                    login(request, user)
                except LoginRefused as refused:  # recorded as login.failed where refused
                    logout(request)  # login() had already signed the browser in
                    form.add_error(None, str(refused))
                    context = {"form": form, "next": next_url}
                    return render(request, "accounts/login.html", context, status=403)
                return HttpResponseRedirect(next_url)
        _record_failure(form)
        form.add_error(None, WRONG_CREDENTIALS)
        return render(request, "accounts/login.html", {"form": form, "next": next_url}, status=400)
    return render(request, "accounts/login.html", {"form": form, "next": next_url})


def _record_failure(form: LoginForm) -> None:
    """login.failed, naming the account it targeted when there is one, so an attack on one
    person shows on their timeline; an unknown identifier stays as typed, in metadata only
    (never the password, OWASP ASVS 7.1.1)."""
    valid = form.is_valid()
    email = (form.cleaned_data["email"] if valid else str(form.data.get("email", "")))[:254]
    targeted = user_id_for_email(email) if valid else None
    emit(
        EventType.LOGIN_FAILED,
        user_id=targeted,
        success=False,
        resource_type="user",
        resource_id=targeted,
        error_code="wrong_credentials" if valid else "malformed_input",
        error_message=WRONG_CREDENTIALS,
        metadata={"provider": "local", "email": email},
    )
