"""The port through which sign-in and token code reach threat scoring (docs/architecture.md,
"Threat detection"): apps/signin and apps/tokens import this module, never apps.threat.
settings.RISK_ASSESSOR names the class that implements `RiskAssessor`
("apps.threat.port.ThreatAssessor"); `risk_assessor()` returns one instance per process.

What crosses the port is plain data: a `LoginContext` in (what the attempt looks like), a
`RiskDecision` out (score 0-100, the reasons, the action). The decision is made BEFORE a
session exists (the `assess_risk` step of apps/signin/pipeline.py): a refusal or a second
factor comes first. Session activity that arrives later (a refresh, a userinfo call) is a
`SessionActivity`, handed over without waiting (`observe_activity`) and judged by a worker.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string


class Action:
    """What a decision asks for, from the mildest. The strongest of the matched rules' actions
    is the decision's `action`; every matched rule's action is carried out (`actions`)."""

    ALLOW = "allow"
    ALERT = "alert"  # operators are told (event, webhook, e-mail); the attempt goes on
    REQUIRE_MFA = "require_mfa"  # this sign-in must prove a second factor (enrol if none)
    INVALIDATE_SESSIONS = "invalidate_sessions"  # every session and grant of the person ends
    BLOCK = "block"  # the attempt is refused and the person blocked

    ORDER: tuple[str, ...] = (ALLOW, ALERT, REQUIRE_MFA, INVALIDATE_SESSIONS, BLOCK)

    @classmethod
    def strongest(cls, actions: list[str] | tuple[str, ...]) -> str:
        return max(actions, key=cls.ORDER.index, default=cls.ALLOW)

    @classmethod
    def refuses(cls, action: str) -> bool:
        """The attempt that earned this action gets no session: a person suspected of being
        someone else is not let in while their sessions are ended."""
        return action in (cls.INVALIDATE_SESSIONS, cls.BLOCK)


@dataclass(frozen=True)
class LoginContext:
    """One sign-in attempt as threat scoring sees it. `success` says whether the first factor
    was proven; an unknown address has no `user_id`. The geo fields and `asn` are filled by
    the assessor from the GeoIP databases when the caller leaves them None (the replay gives
    them from its trace)."""

    at: dt.datetime
    email: str
    ip: str | None
    user_agent: str
    success: bool
    user_id: uuid.UUID | None = None
    device_id: str = ""  # the device cookie; "" for a client that keeps none (scripts)
    country: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int | None = None
    # A keyed digest of the password tried (apps.threat.features.password_digest), so that one
    # password tried against many accounts (spraying) can be counted without keeping it.
    password_digest: str = ""


@dataclass(frozen=True)
class RiskReason:
    signal: str  # a name from apps.threat.signals.SIGNALS
    points: int  # what it added to the score
    detail: str = ""  # for people: "Tokyo, JP → Lyon, FR: 9,720 km in 2 h"


@dataclass(frozen=True)
class RiskDecision:
    score: int  # 0-100
    action: str  # Action.*: the strongest of `actions`
    reasons: tuple[RiskReason, ...] = ()
    rules: tuple[str, ...] = ()  # names of the rules that matched
    actions: tuple[str, ...] = ()  # each matched rule's action, carried out by the assessor
    flags: tuple[str, ...] = ()  # boolean signals that were true (kept on the login session)
    # What the assessor wants to keep with the session or the event (country, asn ...).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def refuses(self) -> bool:
        return Action.refuses(self.action)


ALLOWED = RiskDecision(score=0, action=Action.ALLOW)


@dataclass(frozen=True)
class SessionActivity:
    """A use of a login session after sign-in: a refresh, a code exchange, a userinfo call."""

    at: dt.datetime
    kind: str  # "refresh" | "code" | "userinfo"
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    ip: str | None
    user_agent: str
    client_id: str = ""
    family: str = ""  # the refresh-token family (grant) it belongs to, if any
    public_client: bool = False
    # The address the session signed in from, when the caller has the session at hand: an
    # activity from the same network is nothing new and costs nothing more.
    session_ip: str | None = None


class RiskAssessor(Protocol):
    def assess(self, context: LoginContext, *, session_id: uuid.UUID | None = None) -> RiskDecision:
        """Score the attempt, record it, carry out the matched rules' actions (block,
        invalidate sessions, alert) and return the decision. Never raises for a dependency
        that is down: the decision is then made from what is known (a failure is logged)."""
        ...

    def learn(self, context: LoginContext) -> None:
        """The sign-in whose decision said extra["learn_when_proven"] proved the second factor
        the decision asked for: its success becomes part of the person's baseline now (it was
        kept out until then). Never raises."""
        ...

    def observe_activity(self, activity: SessionActivity) -> None:
        """Hand session activity over for asynchronous assessment; returns at once."""
        ...


@cache
def risk_assessor() -> RiskAssessor:
    assessor: RiskAssessor = import_string(settings.RISK_ASSESSOR)()
    return assessor


def password_digest(password: str) -> str:
    """A keyed digest of a password tried (HMAC-SHA256 under a key derived from SECRET_KEY,
    cut to 128 bits), for LoginContext.password_digest: what counts one password tried against
    many accounts (spraying) without keeping it. Here, not in apps.threat, so sign-in can
    make it without importing threat code. "" for no password."""
    if not password:
        return ""
    digest = salted_hmac("tessera.threat.password", password, algorithm="sha256")
    return digest.hexdigest()[:32]
