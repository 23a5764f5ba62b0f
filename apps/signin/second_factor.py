"""The second factor of a sign-in, and step-up: the state the pipeline's `second_factor` step
leaves in the browser's session, which factors the page offers, and how one is proven against
its own failed-attempt counters.

A *challenge* is what the person has proven so far and what they still owe, kept server-side
in this browser's Django session (CHALLENGE_KEY) for CHALLENGE_SECONDS: the person's id, the
methods proven (RFC 8176 amr), where the journey ends (`next`), the level wanted and whether
a policy requires it. Two modes:
- `sign_in`: the password was right; nothing session-like exists yet (no login session, no
  login(): OWASP ASVS 4.0.3 V3.2.1). The browser session's key is renewed when the challenge
  begins, so a key known before the password cannot carry it (session fixation).
- `step_up`: a live login session is asked for more (docs/architecture.md, "Authentication
  levels and step-up"): the challenge names that session and dies with it.

Second-factor answers have their own counters (apps.ratelimit kind "mfa", keyed by the
account id: Keycloak issue 46164): whoever answers has the password already, so a few wrong
answers (MFA_LOCKOUT_THRESHOLD) lock the second factor with a growing wait, the person is
told by e-mail, and password failures never touch these counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from apps.accounts.models import User
from apps.core.events import EventType, emit
from apps.mfa.errors import (
    CeremonyExpired,
    ClonedAuthenticator,
    FactorNotFound,
    MalformedInput,
    MfaError,
    ReplayedCode,
)
from apps.mfa.models import FactorKind
from apps.mfa.selectors import factors_of
from apps.ratelimit import services as ratelimit
from apps.sessions.levels import LEVEL_HARDWARE_KEY, LEVEL_MFA
from apps.sessions.models import LoginSession
from apps.sessions.selectors import session_current
from apps.signin.notices import security_notice

log = logging.getLogger("tessera.signin")

CHALLENGE_KEY = "tessera_second_factor"
# How long a pending sign-in waits for its second factor (NIST SP 800-63B §4.2.3 allows
# longer; five minutes is enough to find a phone, short enough that a forgotten tab is dead).
CHALLENGE_SECONDS = 300
SIGN_IN, STEP_UP = "sign_in", "step_up"

LOCKED = "Too many wrong answers for your second factor. It is locked for now: try again in {wait}."
LOCKED_PERMANENTLY = (
    "Too many wrong answers for your second factor. Ask your administrator to unlock it."
)
NOW_LOCKED = " Too many wrong answers: your second factor is locked for {wait}."
SLOW_DOWN = "Too many attempts from your address. Try again in {wait}."


@dataclass
class Challenge:
    mode: str  # SIGN_IN or STEP_UP
    user_id: str
    amr: list[str]  # RFC 8176: proven so far (the password; a step-up session's own)
    next_url: str  # checked by the view that began it (our own pages only)
    wanted: int  # the level to reach (apps.sessions.levels)
    required: bool  # a policy requires a second factor: no going on without one
    started: float  # epoch seconds
    session_id: str = ""  # STEP_UP: the login session
    totp_device: str = ""  # enrolment: the unconfirmed TOTP device shown to the person
    # SIGN_IN: the risk decision before this page (pipeline.risk_of), for the login session.
    risk: dict[str, Any] = field(default_factory=dict)
    # SIGN_IN: who vouched for the first factor ("local", or an upstream provider's slug).
    provider: str = "local"

    @property
    def expired(self) -> bool:
        return not 0 <= time.time() - self.started <= CHALLENGE_SECONDS


def challenge_begin(
    request: HttpRequest,
    *,
    user: User,
    amr: list[str],
    next_url: str,
    wanted: int,
    required: bool,
    risk: dict[str, Any] | None = None,
    provider: str = "local",
) -> str:
    """A pending sign-in (the pipeline's `second_factor` step); returns the page to go to."""
    request.session.cycle_key()  # OWASP ASVS 3.2.1: a new key as the privilege changes
    _save(
        request,
        Challenge(
            SIGN_IN,
            str(user.pk),
            list(amr),
            next_url,
            wanted,
            required,
            time.time(),
            risk=dict(risk or {}),
            provider=provider,
        ),
    )
    return reverse("signin:second_factor")


def step_up_begin(
    request: HttpRequest, *, session: LoginSession, next_url: str, wanted: int
) -> str:
    """A live login session asked for a level it lacks (`/login?step_up=<acr>`)."""
    _save(
        request,
        Challenge(
            STEP_UP,
            str(session.user_id),
            list(session.amr),
            next_url,
            wanted,
            False,
            time.time(),
            session_id=str(session.pk),
        ),
    )
    return reverse("signin:second_factor")


def challenge_current(request: HttpRequest) -> Challenge | None:
    """This browser's challenge, or None: none begun, expired, unreadable, or (step-up) its
    login session no longer this browser's live one. An expired one is dropped."""
    raw = request.session.get(CHALLENGE_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        challenge = Challenge(**raw)
    except TypeError:
        challenge_end(request)
        return None
    if challenge.expired:
        challenge_end(request)
        return None
    if challenge.mode == STEP_UP:
        live = session_current(request)
        if live is None or str(live.pk) != challenge.session_id:
            challenge_end(request)
            return None
    return challenge


def challenge_save(request: HttpRequest, challenge: Challenge) -> None:
    _save(request, challenge)


def challenge_end(request: HttpRequest) -> None:
    request.session.pop(CHALLENGE_KEY, None)


def challenge_user(challenge: Challenge) -> User | None:
    """The person of the challenge, if their account is still active."""
    return User.objects.filter(pk=challenge.user_id, is_active=True).first()


def _save(request: HttpRequest, challenge: Challenge) -> None:
    request.session[CHALLENGE_KEY] = asdict(challenge)


# --- what the page offers -----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    totp: bool = False
    webauthn: bool = False
    recovery_codes: int = 0  # unused codes left
    reaches_level: bool = True  # the factors offered can reach the level wanted

    @property
    def any(self) -> bool:
        return self.totp or self.webauthn or self.recovery_codes > 0


def factors_offered(user: User, *, wanted: int, mode: str) -> Offer:
    """The person's factors the page offers. For level 3 (urn:tessera:acr:hwk) only a
    WebAuthn credential that is not backup-eligible reaches it (apps.mfa.methods.device_bound;
    NIST SP 800-63B §4.3 AAL3: a hardware-bound authenticator): a step-up offers only those
    (nothing else would change the session's level), while a pending sign-in offers all the
    person's factors (their second factor is due whatever the request asked) and says when
    none reaches the level."""
    factors = [factor for factor in factors_of(user) if not factor.cloned]
    totp = any(f.kind == FactorKind.TOTP for f in factors)
    keys = [f for f in factors if f.kind == FactorKind.WEBAUTHN]
    codes = next((f.remaining or 0 for f in factors if f.kind == FactorKind.RECOVERY_CODES), 0)
    if wanted < LEVEL_HARDWARE_KEY:
        return Offer(totp=totp, webauthn=bool(keys), recovery_codes=codes)
    bound = any(not key.passkey for key in keys)
    if mode == STEP_UP:
        return Offer(webauthn=bound, reaches_level=bound)
    return Offer(totp=totp, webauthn=bool(keys), recovery_codes=codes, reaches_level=bound)


def may_enrol(user: User) -> bool:
    """Enrolment on the sign-in pages is for a person without any second factor (recovery
    codes included): one who has a factor proves it here, and adds others on their security
    page once signed in. Else the enrolment page would be a way around the factor they
    have (OWASP ASVS 4.0.3 V2.5: authenticator lifecycle)."""
    return not factors_offered(user, wanted=LEVEL_MFA, mode=SIGN_IN).any


# --- proving a factor ----------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    message: str  # for the person
    status: int
    headers: dict[str, str] = field(default_factory=dict)


def prove(
    request: HttpRequest, *, user: User, method: str, check: Callable[[], list[str]]
) -> list[str] | Failure:
    """Runs `check` (an apps.mfa verification returning the methods it proves) under the
    person's second-factor counter: reserved before the answer is checked (OWASP ASVS 4.0.3
    V2.2.1; NIST SP 800-63B §5.2.2 throttling), refused without checking while locked, so a
    right answer is refused too (else the lock would be an oracle). A refusal records
    mfa.failed (`locked`), as the factor functions record their own failures."""
    reservation = ratelimit.attempt_begin(
        request, kind="mfa", identifier=str(user.pk), user_id=user.pk
    )
    if not reservation.allowed:
        decision = reservation.decision
        locked = decision.reason == "locked"
        emit(
            EventType.MFA_FAILED,
            user_id=user.pk,
            resource_type=method,
            success=False,
            error_code="locked" if locked else "rate_limited",
        )
        if decision.permanent:
            message = LOCKED_PERMANENTLY
        else:
            message = (LOCKED if locked else SLOW_DOWN).format(wait=decision.wait)
        return Failure(message, 429, decision.headers())
    try:
        amr = check()
    except MfaError as error:
        message = failure_message(error, method)
        if reservation.failed():  # this failure locked the second factor
            message += NOW_LOCKED.format(wait=_first_wait(user))
            _notify_locked(request, user)
        return Failure(message, 400)
    reservation.succeeded()
    return amr


def _first_wait(user: User) -> str:
    """The wait of the lock just set, as the person reads it."""
    found = ratelimit.lockouts_for(kind="mfa", identifier=str(user.pk))
    seconds = max((lockout.locked_for for lockout in found), default=0)
    if seconds < 0:
        return "until your administrator unlocks it"
    return ratelimit.Decision(False, retry_after=seconds).wait


def _notify_locked(request: HttpRequest, user: User) -> None:
    """The person hears of it at once (OWASP ASVS 5.0 V6.3.5): someone who has their
    password is guessing their second factor, or they are. Never undoes the refusal."""
    try:
        security_notice(user=user, kind="mfa_locked", request=request)
    except Exception:  # the broker or the template: logged, the lock stands
        log.exception("second-factor lock notice not queued for %s", user.pk)


def failure_message(error: MfaError, method: str) -> str:
    """What the person reads for an apps.mfa error (never its internals)."""
    if isinstance(error, ReplayedCode):
        return "That code was used already. Wait for the next one and type it."
    if isinstance(error, ClonedAuthenticator):
        return (
            "This security key can no longer be used: it may have been copied. Use another "
            "sign-in method, or ask your administrator."
        )
    if isinstance(error, CeremonyExpired):
        return "The security key took too long to answer, or the page was reused. Try again."
    if isinstance(error, FactorNotFound):
        return "That sign-in method is not set up for your account."
    if isinstance(error, MalformedInput):
        if method == FactorKind.WEBAUTHN:
            return "The security key's answer could not be read. Try again."
        return "That code is not in the right form."
    if method == FactorKind.RECOVERY_CODES:
        return "That recovery code is not valid, or it was used already."
    if method == FactorKind.WEBAUTHN:
        return "The security key's answer was not accepted. Try again."
    return "That code is not right. Check the time on your phone, then type the current code."
