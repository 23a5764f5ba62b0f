"""The hosted sign-in journey as one pipeline of ordered steps, read top to bottom (STEPS):

    identify → limits → first factor (password) → [second factor] → [risk decision] → session

(Keycloak's authentication flows and node-oidc-provider's interaction policy are built the
same way.) Each step takes the attempt so far and returns None to go on, or a Refusal that
ends it: the page shows the refusal's message with its status, and the step has recorded its
security event. A feature that touches sign-in (MFA, the threat port, federation) adds a step
here, visibly, not a signal receiver elsewhere. django.contrib.auth's login() is still called
by the session step, so `user_logged_in` fires for third-party code; nothing of ours listens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth import login
from django.contrib.auth.hashers import make_password
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.sessions.models import LoginSession
from apps.sessions.selectors import SESSION_KEY
from apps.sessions.services import SessionRefused, session_start

# One message for an unknown address, a wrong password and a deactivated account: the page
# must not tell which addresses have accounts (OWASP Authentication Cheat Sheet,
# "Authentication Responses"; ASVS 4.0.3 has no item of its own for it).
WRONG_CREDENTIALS = "Email or password is incorrect."
PROVIDER = "local"
# The backend that later requests resolve the signed-in user with (request.user).
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass
class Attempt:
    """One sign-in as it goes through the steps."""

    request: HttpRequest
    email: str  # as typed (the form bounds it); events keep it so
    password: str
    user: User | None = None  # the account the address names, found by `identify`
    amr: list[str] = field(default_factory=list)  # RFC 8176: the methods proven so far
    session: LoginSession | None = None  # the login session `open_session` began


@dataclass(frozen=True)
class Refusal:
    message: str  # shown to the person
    status: int  # of the page that shows it


Step = Callable[[Attempt], Refusal | None]


def identify(attempt: Attempt) -> Refusal | None:
    """The account the address names, in any case (the lookup django.contrib.auth's
    ModelBackend makes). An unknown address is not refused here: it goes through the same
    steps, so its answer and its cost are a wrong password's (`first_factor_password`)."""
    try:
        attempt.user = User._default_manager.get_by_natural_key(attempt.email)
    except User.DoesNotExist:
        attempt.user = None
    return None


def limits(attempt: Attempt) -> Refusal | None:
    """Rate limits and failed-attempt counters, BEFORE the password is verified (issue 12;
    OWASP ASVS 2.2.1 anti-automation, NIST SP 800-63B §5.2.2 throttling): the slot where
    apps/ratelimit plugs in its check (`ratelimit.services.check(...)`, keyed on the client
    IP and the normalized identifier whether or not an account exists, one Redis round trip)
    and refuses with 429 and when to retry. A locked identifier must answer the same whether
    the password given is right or wrong, so nothing after this step may run for it.

    Nothing plugs in yet: the rate-limit app is being built beside this one. Until it lands
    every attempt passes.
    """
    return None


def first_factor_password(attempt: Attempt) -> Refusal | None:
    """The password, checked against its salted argon2id hash (NIST SP 800-63B §5.1.1.2;
    OWASP ASVS 2.4.1; apps.accounts.hashers). An unknown address, or an account without a
    usable password, costs one hash all the same (as ModelBackend does), so timing does not
    tell which addresses have accounts. A deactivated account is refused like a wrong
    password. On success a hash made with older parameters is rehashed (check_password)."""
    user = attempt.user
    if user is None or not user.has_usable_password():
        make_password(attempt.password)  # the cost of a real check, for no account
        return _wrong_credentials(attempt)
    if not user.check_password(attempt.password) or not user.is_active:
        return _wrong_credentials(attempt)
    attempt.amr.append("pwd")
    return None


# second factor (apps/mfa) goes after first_factor_password: what the first factor proved
# and the account's enrolled factors decide whether one is asked.
# risk decision (threat scoring, through a port in core) goes before open_session: a
# refusal or a required step-up must come before any session exists.


def open_session(attempt: Attempt) -> Refusal | None:
    """The login session (apps.sessions.services.session_start: bound to this browser's
    device, IP and user agent; the per-user session limit) and the browser's
    signed-in session. Django's login() gives the browser session a new key (session
    fixation, OWASP ASVS 3.2.1) and a new CSRF token."""
    user = attempt.user
    assert user is not None  # the steps before refuse an attempt without one
    started = session_start(user=user, amr=attempt.amr, provider=PROVIDER, request=attempt.request)
    if isinstance(started, SessionRefused):  # its login.failed event is recorded
        return Refusal(started.message, status=403)
    login(attempt.request, user, backend=SESSION_BACKEND)
    attempt.request.session[SESSION_KEY] = str(started.pk)
    attempt.session = started
    emit(
        EventType.LOGIN_SUCCEEDED,
        user_id=user.pk,
        session_id=started.pk,
        resource_type="session",
        resource_id=started.pk,
        metadata={"provider": started.provider, "amr": started.amr},
    )
    return None


STEPS: tuple[Step, ...] = (identify, limits, first_factor_password, open_session)


def sign_in(request: HttpRequest, *, email: str, password: str) -> Attempt | Refusal:
    """Runs the steps in order; the signed-in attempt, or the refusal that stopped it."""
    attempt = Attempt(request=request, email=email, password=password)
    for step in STEPS:
        refusal = step(attempt)
        if refusal is not None:
            return refusal
    return attempt


def refuse_malformed(*, email: str) -> Refusal:
    """A form that is not an address and a password: refused before any step, recorded like
    a wrong password (the address as typed, bounded)."""
    _record_failure(user_id=None, email=email[:254], error_code="malformed_input")
    return Refusal(WRONG_CREDENTIALS, status=400)


def _wrong_credentials(attempt: Attempt) -> Refusal:
    user_id = attempt.user.pk if attempt.user is not None else None
    _record_failure(user_id=user_id, email=attempt.email, error_code="wrong_credentials")
    return Refusal(WRONG_CREDENTIALS, status=400)


def _record_failure(*, user_id: object, email: str, error_code: str) -> None:
    """login.failed, naming the account it targeted when there is one, so an attack on one
    person shows on their timeline; the address stays as typed, in metadata only (never the
    password, OWASP ASVS 7.1.1)."""
    emit(
        EventType.LOGIN_FAILED,
        user_id=user_id,
        success=False,
        resource_type="user",
        resource_id=user_id,
        error_code=error_code,
        error_message=WRONG_CREDENTIALS,
        metadata={"provider": PROVIDER, "email": email},
    )
