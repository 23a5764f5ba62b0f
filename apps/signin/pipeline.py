"""The hosted sign-in journey as one pipeline of ordered steps, read top to bottom (STEPS):

    identify → limits → first factor (password) → not blocked → risk decision
             → second factor → recognize device → session → new-device notice

(Keycloak's authentication flows and node-oidc-provider's interaction policy are built the
same way.) Each step takes the attempt so far and returns None to go on, a Refusal that
ends it (the page shows the refusal's message with its status, and the step has recorded its
security event), or an Interaction: the journey goes on on another page (the second factor,
apps/signin/second_factor.py), which resumes the remaining steps once it is proven
(`sign_in_resume`). A feature that touches sign-in (MFA, the threat port, federation) adds a step
here, visibly, not a signal receiver elsewhere. django.contrib.auth's login() is still called
by the session step, so `user_logged_in` fires for third-party code; nothing of ours listens.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.hashers import make_password
from django.db.models import Exists, OuterRef, QuerySet, Value
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import OrganizationMembership, User
from apps.core import request_context
from apps.core.events import EventType, emit
from apps.core.risk import Action, LoginContext, RiskDecision, password_digest, risk_assessor
from apps.mfa.selectors import second_factor_exists
from apps.ratelimit import services as ratelimit
from apps.sessions import binding
from apps.sessions.levels import LEVEL_MFA, acr_level, level_of
from apps.sessions.models import LoginSession
from apps.sessions.selectors import SESSION_KEY, device_signed_in_before
from apps.sessions.services import SessionRefused, session_start
from apps.signin.notices import security_notice
from apps.signin.second_factor import challenge_begin

log = logging.getLogger("tessera.signin")

# One message for an unknown address, a wrong password and a deactivated account: the page
# must not tell which addresses have accounts (OWASP Authentication Cheat Sheet,
# "Authentication Responses"; ASVS 4.0.3 has no item of its own for it).
WRONG_CREDENTIALS = "Email or password is incorrect."
BLOCKED = "This account is blocked. Contact your administrator."
# A refusal by a threat rule says no more than that: the rules and signals stay with operators.
RISK_REFUSED = "This sign-in was refused to protect the account. Contact your administrator."
PROVIDER = "local"
# The backend that later requests resolve the signed-in user with (request.user).
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"
# An account id none has (the nil UUID, RFC 9562 §5.9; ids are random v4): what an unknown
# address is looked up as where a real one costs a lookup by its id.
NO_ACCOUNT = uuid.UUID(int=0)


@dataclass
class Attempt:
    """One sign-in as it goes through the steps."""

    request: HttpRequest
    email: str  # as typed (the form bounds it); events keep it so
    password: str
    user: User | None = None  # the account the address names, found by `identify`
    amr: list[str] = field(default_factory=list)  # RFC 8176: the methods proven so far
    session: LoginSession | None = None  # the login session `open_session` began
    # The failed-attempt slot `limits` reserved; settled by `first_factor_password`.
    reservation: ratelimit.Attempt | None = None
    # This browser never opened a session of this account before (`recognize_device`).
    new_device: bool = False
    # Where the journey ends (an authorize request, the account page): checked by the view.
    next_url: str = ""
    # The level an authorize request sent this sign-in for (`/login?step_up=<acr>`), or 0.
    step_up: int = 0
    # The second-factor page proved a factor, or let the person go on without one
    # (sign_in_resume): the `second_factor` step lets the attempt through.
    second_factor_settled: bool = False
    # The risk decision (`assess_risk`): kept on the login session as {"score", "flags",
    # "reasons"}, across the second-factor page (its Challenge carries it).
    risk: dict[str, Any] = field(default_factory=dict)
    # A threat rule asked a second factor of this sign-in (enrolment if none).
    risk_requires_mfa: bool = False
    # Who vouched for the first factor: PROVIDER for our own password or passkey, an upstream
    # provider's slug for a federated sign-in (apps/federation); on the login session and in
    # tokens' `provider` claim.
    provider: str = PROVIDER


@dataclass(frozen=True)
class Refusal:
    message: str  # shown to the person
    status: int  # of the page that shows it
    headers: dict[str, str] = field(default_factory=dict)  # Retry-After and RateLimit on 429


@dataclass(frozen=True)
class Interaction:
    """The journey goes on on another page (the second factor): where to send the browser."""

    url: str


Step = Callable[[Attempt], Refusal | Interaction | None]


def identify(attempt: Attempt) -> Refusal | None:
    """The account the address names, in any case (the lookup django.contrib.auth's
    ModelBackend makes: UserManager.get_by_natural_key's, on the index of lower(email)). An
    unknown address is not refused here: it goes through the same steps, so its answer and
    its cost are a wrong password's (`first_factor_password`).

    The same statement says what `second_factor` needs to know (correlated EXISTS on indexed
    columns): whether the person has a second factor (apps.mfa.selectors.has_second_factor)
    and whether one of their organizations requires one (the organization half of
    apps.accounts.services.mfa_required_by_policy), so a sign-in without MFA costs what it
    did."""
    try:
        attempt.user = (
            _with_mfa_policy()
            .alias(email_lower=Lower("email"))
            .get(email_lower=Lower(Value(attempt.email)))
        )
    except User.DoesNotExist:
        attempt.user = None
    return None


def _with_mfa_policy() -> QuerySet[User]:
    """Accounts with what `second_factor` asks of them: a factor, an organization's rule."""
    organization_requires = OrganizationMembership.objects.filter(
        user_id=OuterRef("pk"), organization__mfa_required=True
    )
    return User._default_manager.annotate(
        has_second_factor=second_factor_exists(),
        organization_requires_mfa=Exists(organization_requires),
    )


def limits(attempt: Attempt) -> Refusal | None:
    """Rate limits and the failed-attempt reservation, BEFORE the password is verified
    (OWASP ASVS 2.2.1 anti-automation, NIST SP 800-63B §5.2.2 throttling), in one Redis
    round trip (apps.ratelimit.services.attempt_begin): the login rules per client IP, per
    address and for the endpoint, and a slot per address and per (address, IP), counted
    whether or not an account exists, so a lockout tells nothing about which do. A browser
    that signed in to this account before is judged by the (address, IP) counter and the
    IP rules only (Keycloak GHSA-cq42-vhv7-xr7p: a lockout must not become a denial of
    service).

    A locked or limited address is refused here, before the password is looked at: the
    answer is the same whether the password given is right or wrong, else the lockout would
    become a password oracle."""
    reservation = _reserve(attempt, known_device=False)
    if not reservation.allowed and reservation.decision.reason == "locked":
        # Asked only when the address is locked (a statement the usual sign-in skips): a
        # refused reservation took nothing, so this one is judged afresh. Asked for an
        # unknown address too, of an id no account has: the same statement either way, else
        # a locked real address would answer one statement later than an unknown one, a
        # timing oracle on which addresses have accounts (OWASP ASVS 4.0.3 V2.2; OWASP
        # Authentication Cheat Sheet, "Authentication Responses": response times too).
        user_id = attempt.user.pk if attempt.user is not None else NO_ACCOUNT
        if (
            device_signed_in_before(user_id=user_id, request=attempt.request)
            and attempt.user is not None
        ):
            reservation = _reserve(attempt, known_device=True)
    if reservation.allowed:
        attempt.reservation = reservation
        return None
    decision = reservation.decision
    _record_failure(
        user_id=attempt.user.pk if attempt.user is not None else None,
        email=attempt.email,
        error_code="locked" if decision.reason == "locked" else "rate_limited",
    )
    return Refusal(_unavailable(decision), status=429, headers=decision.headers())


def _reserve(attempt: Attempt, *, known_device: bool) -> ratelimit.Attempt:
    return ratelimit.attempt_begin(
        attempt.request,
        kind="login",
        identifier=attempt.email,
        # A known browser is spared the address's own rate rule as its own counter: what
        # others do to the address must not keep its owner out.
        account=None if known_device else attempt.email,
        known_device=known_device,
        user_id=attempt.user.pk if attempt.user is not None else None,
    )


def _unavailable(decision: ratelimit.Decision) -> str:
    if decision.permanent:
        return "Sign-in is unavailable for this address. Ask your administrator to unlock it."
    return f"Sign-in is temporarily unavailable for this address. Try again in {decision.wait}."


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
    if attempt.reservation is not None:
        attempt.reservation.succeeded()
    attempt.amr.append("pwd")
    return None


def not_blocked(attempt: Attempt) -> Refusal | None:
    """A blocked person (User.is_blocked: by an operator or a threat rule, until unblocked or
    the block's time passes) is refused once the first factor is proven: a wrong password
    is answered as any other, so a block tells nothing to whoever does not know it."""
    user = attempt.user
    assert user is not None  # the steps before refuse an attempt without one
    if not user.is_blocked():
        return None
    _record_failure(
        user_id=user.pk, email=attempt.email, error_code="blocked", provider=attempt.provider
    )
    return Refusal(BLOCKED, status=403)


def assess_risk(attempt: Attempt) -> Refusal | None:
    """The attempt judged by threat scoring through the port (apps.core.risk: the score, its
    reasons, the rules that match), before anything session-like exists. A refusing decision
    (block, invalidate_sessions) ends the attempt, recorded as login.failed "risk_refused" (the
    assessor has recorded threat.assessed and carried out the block or the ending); a
    require_mfa asks a second factor of this sign-in even where none would be asked, and
    enrolment where the person has none (OWASP ASVS 5.0 V6.3.5: risk-based step-up). A
    passkey sign-in (level 2 already) satisfies it. The score, the flags and the reasons go on
    the login session (`open_session`)."""
    user = attempt.user
    assert user is not None  # the steps before refuse an attempt without one
    decision = risk_assessor().assess(_risk_context(attempt, success=True))
    attempt.risk = risk_of(decision)
    if decision.refuses:
        _record_failure(
            user_id=user.pk,
            email=attempt.email,
            error_code="risk_refused",
            provider=attempt.provider,
        )
        return Refusal(RISK_REFUSED, status=403)
    if Action.REQUIRE_MFA in decision.actions and level_of(attempt.amr).security_level < LEVEL_MFA:
        attempt.risk_requires_mfa = True
    return None


def risk_of(decision: RiskDecision) -> dict[str, Any]:
    """What the login session keeps of a decision (JSON: it crosses the second-factor page)."""
    return {
        "score": decision.score,
        "flags": list(decision.flags),
        "reasons": [
            {"signal": r.signal, "points": r.points, "detail": r.detail} for r in decision.reasons
        ],
        # The second factor the decision asked for must be proven before the person's
        # baseline learns this sign-in (open_session tells the port).
        "learn": bool(decision.extra.get("learn_when_proven")),
    }


def _risk_context(attempt: Attempt, *, success: bool) -> LoginContext:
    context = request_context.current()
    try:
        cookie = binding.device_cookie(attempt.request)
    except binding.TamperedDeviceCookie:
        cookie = None
    return LoginContext(
        at=timezone.now(),
        email=attempt.email,
        ip=context.client_ip if context else None,
        user_agent=context.user_agent if context else "",
        success=success,
        user_id=attempt.user.pk if attempt.user is not None else None,
        device_id=binding.device_id(cookie, attempt.request) if cookie else "",
        password_digest=password_digest(attempt.password),
    )


def second_factor(attempt: Attempt) -> Refusal | Interaction | None:
    """A second factor (apps/mfa: TOTP, WebAuthn, a recovery code) is asked when the person
    has one (NIST SP 800-63B §4.2: AAL2 for whoever can give it), when a policy requires one
    (the person's flag, an organization, IDP_MFA_REQUIRED), or when the authorize request
    that sent the browser here asks for level 2 or more (`step_up`, OIDC Core §3.1.2.1
    acr_values; a client's require_mfa). Nothing session-like exists before it is proven (no
    login session, no login(): OWASP ASVS 4.0.3 V2.8, V3.2.1): what the password proved
    becomes a short-lived pending sign-in in this browser's session, and the browser goes
    to the second-factor page (apps/signin/second_factor.py), which comes back through
    `sign_in_resume` once the factor is proven or enrolled. Without a factor and a
    requirement, a person only asked for one is told so and may go on (authorize decides)."""
    if attempt.second_factor_settled:
        return None
    user = attempt.user
    assert user is not None  # the steps before refuse an attempt without one
    required = bool(
        settings.MFA_REQUIRED
        or user.mfa_required
        or getattr(user, "organization_requires_mfa", False)
        or attempt.risk_requires_mfa
    )
    enrolled = bool(getattr(user, "has_second_factor", False))
    if not (required or enrolled or attempt.step_up >= LEVEL_MFA):
        return None
    url = challenge_begin(
        attempt.request,
        user=user,
        amr=attempt.amr,
        next_url=attempt.next_url,
        wanted=max(LEVEL_MFA, attempt.step_up),
        required=required,
        risk=attempt.risk,
        provider=attempt.provider,
    )
    return Interaction(url)


def recognize_device(attempt: Attempt) -> Refusal | None:
    """Whether this browser (its device cookie, browser and platform) ever opened a login
    session of this account: asked before `open_session`, whose new session would answer
    yes. Only a proven sign-in gets here, so the failure paths cost what they did (one
    statement more only for a login the session limit then refuses). Not a new device on
    the account's very first sign-in (last_login still empty): every device is new then, and
    the person who was just given the account is the one signing in; a notice with every
    first sign-in would teach people to ignore them. From the second sign-in on, every new
    device is announced, as Google's security alerts do ("new sign-in on <device>"), not only
    a suspicious-looking one: the person, not a score, judges whether it was them."""
    user = attempt.user
    assert user is not None  # the steps before refuse an attempt without one
    attempt.new_device = user.last_login is not None and not device_signed_in_before(
        user_id=user.pk, request=attempt.request
    )
    return None


def open_session(attempt: Attempt) -> Refusal | None:
    """The login session (apps.sessions.services.session_start: bound to this browser's
    device, IP and user agent; the per-user session limit) and the browser's
    signed-in session. Django's login() gives the browser session a new key (session
    fixation, OWASP ASVS 3.2.1) and a new CSRF token."""
    user = attempt.user
    assert user is not None  # the steps before refuse an attempt without one
    started = session_start(
        user=user,
        amr=attempt.amr,
        provider=attempt.provider,
        request=attempt.request,
        risk=attempt.risk,
    )
    if isinstance(started, SessionRefused):  # its login.failed event is recorded
        return Refusal(started.message, status=403)
    login(attempt.request, user, backend=SESSION_BACKEND)
    attempt.request.session[SESSION_KEY] = str(started.pk)
    attempt.session = started
    if attempt.risk.get("learn"):  # the factor a rule asked for is proven: now it counts
        risk_assessor().learn(_risk_context(attempt, success=True))
    emit(
        EventType.LOGIN_SUCCEEDED,
        user_id=user.pk,
        session_id=started.pk,
        resource_type="session",
        resource_id=started.pk,
        metadata={
            "provider": started.provider,
            "amr": started.amr,
            "new_device": attempt.new_device,
            # What a rebuilt threat baseline learns the device from (apps/threat/baselines).
            "device_id": started.device_id,
        },
    )
    return None


def notify_new_device(attempt: Attempt) -> Refusal | None:
    """A sign-in from a device this account never used gets an e-mail to the person (OWASP
    ASVS 5.0 V6.3.5: notify users of suspicious authentication, e.g. from an unusual
    client; what Google, Microsoft and GitHub send): when, from where, which browser, and a
    link to the account page to end the session. A notice that cannot be queued is logged:
    it never undoes a sign-in the person proved."""
    if not attempt.new_device:
        return None
    assert attempt.user is not None  # the steps before refuse an attempt without one
    try:
        security_notice(user=attempt.user, kind="new_device", request=attempt.request)
    except Exception:  # the broker or the template: a missing notice is not a refusal
        log.exception("new-device notice not queued for %s", attempt.user.pk)
    return None


STEPS: tuple[Step, ...] = (
    identify,
    limits,
    first_factor_password,
    not_blocked,
    assess_risk,
    second_factor,
    recognize_device,
    open_session,
    notify_new_device,
)


# A sign-in an upstream provider vouched for (apps/federation: the person is the one linked to
# its (provider, subject)): the steps after the first factor, the same ones a password's
# success goes through — blocks, the risk decision, a second factor when one is owed (the
# upstream's own MFA is not taken on its word), the device, the session.
FEDERATED_STEPS: tuple[Step, ...] = STEPS[STEPS.index(not_blocked) :]


def sign_in(
    request: HttpRequest, *, email: str, password: str, next_url: str = ""
) -> Attempt | Refusal | Interaction:
    """Runs the steps in order; the signed-in attempt, the refusal that stopped it, or the
    page the journey goes on with."""
    attempt = Attempt(
        request=request,
        email=email,
        password=password,
        next_url=next_url,
        step_up=step_up_level(request),
    )
    return run_steps(attempt, STEPS)


def sign_in_federated(
    request: HttpRequest, *, user: User, provider: str, next_url: str
) -> Attempt | Refusal | Interaction:
    """The steps after the first factor for `user`, whom the upstream `provider` (its slug)
    vouched for: `amr` is ["fed"] (RFC 8176 §2: federated authentication), level 1. The
    account is read again with what `second_factor` needs to know (`identify`'s statement,
    by id)."""
    attempt = Attempt(
        request=request,
        email=user.email,
        password="",
        user=_with_mfa_policy().get(pk=user.pk),
        amr=["fed"],
        next_url=next_url,
        step_up=step_up_level(request),
        provider=provider,
    )
    return run_steps(attempt, FEDERATED_STEPS)


def sign_in_resume(
    request: HttpRequest,
    *,
    user: User,
    amr: list[str],
    next_url: str,
    risk: dict[str, Any] | None = None,
    provider: str = PROVIDER,
) -> Attempt | Refusal | Interaction:
    """The steps after the second factor, for a pending sign-in whose factor is proven (its
    methods in `amr`) or which may go on without one; `risk` is the decision `assess_risk`
    made before the second-factor page."""
    attempt = Attempt(
        request=request,
        email=user.email,
        password="",
        user=user,
        amr=list(amr),
        next_url=next_url,
        second_factor_settled=True,
        risk=dict(risk or {}),
        provider=provider or PROVIDER,
    )
    return run_steps(attempt, STEPS[STEPS.index(second_factor) :])


def run_steps(attempt: Attempt, steps: tuple[Step, ...]) -> Attempt | Refusal | Interaction:
    """Runs `steps` in order (a journey's own list: STEPS, passwordless.STEPS)."""
    for step in steps:
        outcome = step(attempt)
        if outcome is not None:
            return outcome
    return attempt


def step_up_level(request: HttpRequest) -> int:
    """The level `/login?step_up=<acr>` names (docs/architecture.md, "Authentication levels
    and step-up"), 0 for none or a value that is not ours. Only ever asks for more: a
    browser that sends it forges nothing but a harder sign-in for itself."""
    return acr_level(request.GET.get("step_up", "")[:64]) or 0


def refuse_malformed(*, email: str) -> Refusal:
    """A form that is not an address and a password: refused before any step, recorded like
    a wrong password (the address as typed, bounded)."""
    _record_failure(user_id=None, email=email[:254], error_code="malformed_input")
    return Refusal(WRONG_CREDENTIALS, status=400)


def _wrong_credentials(attempt: Attempt) -> Refusal:
    if attempt.reservation is not None:
        attempt.reservation.failed()  # counted; may lock (account.locked)
    user_id = attempt.user.pk if attempt.user is not None else None
    _record_failure(user_id=user_id, email=attempt.email, error_code="wrong_credentials")
    # Judged too (an unknown address included): failure counts, spraying and the alert and
    # block rules see it. The answer stays the wrong password's whatever the decision.
    risk_assessor().assess(_risk_context(attempt, success=False))
    return Refusal(WRONG_CREDENTIALS, status=400)


def _record_failure(
    *, user_id: object, email: str, error_code: str, provider: str = PROVIDER
) -> None:
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
        metadata={"provider": provider, "email": email},
    )
