"""Carrying out what a risk decision asks (docs/threat.md, "Responses"), through the
services of the apps that own each thing: accounts (block, the second-factor requirement),
sessions (ending login sessions: their access tokens listed as revoked, back-channel logout to
the relying parties), tokens through the core port (offline grants), and alerts.

What the sign-in does itself is not done here: refusing the attempt (a block or an
invalidation refuses it, Action.refuses) and asking for a second factor (require_mfa at sign-in
is the pipeline's step). An unknown address (no user_id) can only be alerted about.

    alert               threat.alerted, then webhook and e-mail (apps/threat/alerts.py)
    block               user_block (source "threat", for the rule's block_minutes or until an
                        operator unblocks), then everything of the person ends, then alert
    invalidate_sessions everything of the person ends, then alert
    require_mfa         from later session activity (no sign-in to step up): a second factor
                        becomes required of the person and that session ends, so the next
                        sign-in proves one; then alert

"Everything ends" (OWASP ASVS 3.3.3; the issue's "tokens refused everywhere within 1 s"):
every live login session (sessions.session_end_all, reason "threat": each session's sid goes
on the revocation list, which every process mirrors through Redis pub/sub, and a back-channel
logout is queued for each client that got tokens under it), every offline grant (through
core.revocation's port to tokens), and every other live access token of the person, by jti.

Automated drastic actions always notify operators, whatever the rule's own action says.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import mfa_requirement_set, user_block
from apps.core import revocation
from apps.core.risk import Action, LoginContext, RiskDecision, SessionActivity
from apps.sessions.models import LoginSession
from apps.sessions.services import session_end, session_end_all
from apps.threat import alerts

log = logging.getLogger("tessera.threat")

REASON = "threat"  # LoginSession.end_reason, offline grants' revoke_reason, token.revoked


def respond(
    decision: RiskDecision,
    *,
    user_id: uuid.UUID | None,
    context: LoginContext | None = None,
    activity: SessionActivity | None = None,
    session_id: uuid.UUID | None = None,
) -> None:
    """Carries out every action of `decision` (see the module's docstring). Never raises for
    a broker or SMTP outage (deliveries are queued after the commit and logged when they
    cannot be); raises only when the block or the ending itself could not be recorded (the
    database, or Redis for the revocation list: a person must not be told "ended" while
    their tokens still work)."""
    actions = tuple(a for a in (decision.actions or (decision.action,)) if a != Action.ALLOW)
    if not actions:
        return
    user = User.objects.filter(pk=user_id).first() if user_id is not None else None
    if user is None:  # an unknown address, or an account deleted meanwhile: only alerting
        alerts.alert(
            decision, user_id=None, context=context, activity=activity, actions=(Action.ALERT,)
        )
        return
    done: list[str] = []
    with transaction.atomic():
        if Action.BLOCK in actions:
            user_block(
                user=user,
                actor_id=None,
                source="threat",
                reason=_block_reason(decision),
                until=_block_until(decision),
                rule=", ".join(decision.rules)[:200],
            )
            done.append(Action.BLOCK)
        if Action.BLOCK in actions or Action.INVALIDATE_SESSIONS in actions:
            end_everything(user)
            done.append(Action.INVALIDATE_SESSIONS)
        elif Action.REQUIRE_MFA in actions and activity is not None:
            mfa_requirement_set(user=user, required=True, actor_id=None, source="threat")
            ended = activity.session_id or session_id
            if ended is not None:
                live = LoginSession.objects.filter(pk=ended, user=user).first()
                if live is not None:
                    session_end(session=live, reason=REASON)
            done.append(Action.REQUIRE_MFA)
        if done or Action.ALERT in actions:
            alerts.alert(
                decision,
                user_id=user.pk,
                email=user.email,
                context=context,
                activity=activity,
                session_id=session_id,
                actions=tuple(done) or (Action.ALERT,),
            )


def end_everything(user: User) -> tuple[int, int, int]:
    """Every live login session, offline grant and access token of the person ends; returns
    how many of each. In the caller's transaction: the back-channel logouts are queued when
    it commits, while the revocation list is written at once (before the commit, as
    sessions.session_end does: a Redis outage fails the response rather than leave tokens
    valid)."""
    with transaction.atomic():
        sessions = session_end_all(user=user, reason=REASON)
        grants = revocation.revoke_user_offline_grants(user=user, reason=REASON)
        tokens = revocation.revoke_user_access_tokens(user_id=user.pk, reason=REASON)
    log.info(
        "threat response ended %d session(s), %d offline grant(s), %d access token(s) of %s",
        sessions,
        grants,
        tokens,
        user.pk,
    )
    return sessions, grants, tokens


def _block_until(decision: RiskDecision) -> dt.datetime | None:
    """decision.extra["block_minutes"]: the matched block rules' minutes (the longest wins;
    None, or any rule without minutes: until an operator unblocks)."""
    minutes = decision.extra.get("block_minutes")
    if isinstance(minutes, (list, tuple)):
        if not minutes or any(m is None for m in minutes):
            return None
        minutes = max(int(m) for m in minutes)
    if minutes is None or isinstance(minutes, bool):
        return None
    return timezone.now() + dt.timedelta(minutes=int(minutes))


def _block_reason(decision: RiskDecision) -> str:
    rules = ", ".join(decision.rules) or "risk score"
    return f"Threat rule {rules} (score {decision.score})"
