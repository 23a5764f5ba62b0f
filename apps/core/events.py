"""The security-event catalog and emit(), the only way to record one.

emit() writes an append-only row to the event outbox through the caller's database connection,
so the event commits or rolls back with the change it records (the transactional outbox the
audit pipeline ships); outside a transaction it is appended to the process's journal before
emit() returns (core.journal). Later features add their events here, one line of doc each.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone

from apps.core import metrics, outbox, request_context


class EventType(models.TextChoices):
    """Closed catalog: the label is the event's one-line documentation."""

    USER_CREATED = "user.created", "An account was created (by sign-up, an operator or the CLI)."
    USER_CHANGED = (
        "user.changed",
        "An account was changed by an operator (in the admin, or its staff role in the "
        "console) or by the person on their account page (actor_id says who): profile, "
        "status, staff rights.",
    )
    USER_DELETED = "user.deleted", "An operator deleted an account."
    EMAIL_VERIFICATION_SENT = (
        "email.verification_sent",
        "A link to verify an e-mail address was sent (at registration, an e-mail change, the "
        "person's or an operator's request; actor_id says who asked).",
    )
    EMAIL_VERIFIED = (
        "email.verified",
        "A person proved they receive mail at an address (a verification link was used).",
    )
    EMAIL_CHANGED = (
        "email.changed",
        "A person's e-mail address changed, after the new one was verified; metadata has both.",
    )
    PASSWORD_RESET_REQUESTED = (
        "password.reset_requested",
        "A password-reset link was asked for (user_id when the address has an account, "
        "metadata.email as typed; actor_id when an operator sent it).",
    )
    PASSWORD_CHANGED = (
        "password.changed",
        "A person's password changed; metadata.method says how (reset link, account page).",
    )
    REGISTRATION_REQUESTED = (
        "registration.requested",
        "Someone asked to register an address (open registration or an invitation); the "
        "account is created only when the address is verified (user.created).",
    )
    INVITATION_CHANGED = (
        "invitation.changed",
        "An operator created or revoked an organization's invitation link, or a person used "
        "one; action says which.",
    )
    MAIL_FAILED = (
        "mail.failed",
        "An e-mail could not be delivered after every retry; metadata names the message and "
        "the last error (never its content).",
    )
    LOGIN_SUCCEEDED = "login.succeeded", "A user proved their identity and a session began."
    LOGIN_FAILED = (
        "login.failed",
        "An attempt to sign in was refused; error_code says why "
        "(wrong_credentials, malformed_input, session_limit); user_id is the account it "
        "targeted when one exists, metadata.email the identifier as typed.",
    )
    LOGOUT = "logout", "A user ended their session."
    SESSION_REVOKED = "session.revoked", "A session was ended by an operator, the API or a rule."
    SESSION_EXPIRED = "session.expired", "A session passed its idle timeout or absolute lifetime."
    SESSION_FLAGGED = (
        "session.flagged",
        "A request on a session changed IP network, device or browser; metadata says which.",
    )
    SESSION_COMPROMISED = (
        "session.compromised",
        "An operator or a rule marked a session compromised.",
    )
    SESSION_LIMIT_REACHED = (
        "session.limit_reached",
        "A login met the per-user session limit and the oldest sessions were ended to make room "
        "(a login the limit refuses is login.failed with error_code session_limit).",
    )
    SESSIONS_ENDED_ALL = (
        "sessions.ended_all",
        "An operator ended every live session of every person at once (incident response, "
        "OWASP ASVS 7.4.5); actor_id says who, metadata.ended how many, metadata.kept the "
        "operator's own session when it was kept.",
    )
    TOKEN_ISSUED = "token.issued", "The token endpoint issued tokens to a client."
    TOKEN_REFRESHED = (
        "token.refreshed",
        "A refresh token was exchanged (and rotated) for new tokens.",
    )
    CONSENT_GRANTED = "consent.granted", "A user allowed a client the scopes it asked for."
    CONSENT_REVOKED = (
        "consent.revoked",
        "A user's consent for a client was withdrawn and the client's tokens for them revoked.",
    )
    TOKEN_REVOKED = "token.revoked", "A token was revoked (RFC 7009 or as part of a session)."
    TOKEN_REUSE_DETECTED = (
        "token.reuse_detected",
        "A rotated refresh token was presented again; its whole grant was revoked.",
    )
    CLIENT_AUTH_FAILED = (
        "client.auth_failed",
        "A client failed to authenticate at the token, introspection or revocation endpoint; "
        "metadata has the client id as given and the endpoint.",
    )
    OFFLINE_ACCESS_GRANTED = (
        "offline_access.granted",
        "A client received an offline grant (OIDC Core §11): a refresh token that outlives "
        "the person's sign-in.",
    )
    OFFLINE_ACCESS_REVOKED = (
        "offline_access.revoked",
        "An offline grant was revoked, with its tokens; metadata.reason says by what.",
    )
    RATELIMIT_EXCEEDED = (
        "ratelimit.exceeded",
        "A rate limit refused requests; one event per limited key and window, not per request "
        "(metadata: rule, key, limit, period, retry_after).",
    )
    ACCOUNT_LOCKED = (
        "account.locked",
        "Too many failed attempts locked an identifier (an account's email or a client id, "
        "existing or not); metadata has the reason, scope, IP and how long.",
    )
    ACCOUNT_UNLOCKED = (
        "account.unlocked",
        "An operator lifted a lockout (actor_id says who); metadata has the reason.",
    )
    RATELIMIT_CLEARED = (
        "ratelimit.cleared",
        "An operator cleared a rate-limit key: its spent quota, violations and backoff penalty "
        "(actor_id says who; metadata: rule, value, reason).",
    )
    CLIENT_CREATED = "client.created", "An OAuth client was registered."
    CLIENT_CHANGED = (
        "client.changed",
        "An operator changed an OAuth client: redirect URIs, grant types, secret, logout URIs.",
    )
    CLIENT_DELETED = "client.deleted", "An operator deleted an OAuth client."
    KEY_ROTATED = (
        "key.rotated",
        "A signing key was created, activated, retired, resealed or removed; action says which.",
    )
    MEMBERSHIP_CHANGED = (
        "membership.changed",
        "An operator changed an organization, workspace or group, or who belongs to it.",
    )
    PERMISSION_CHANGED = (
        "permission.changed",
        "Who may do what changed: an organization, workspace, group, role, permission, staff "
        "permission group or a person's membership (user_id the person, actor_id the "
        "operator, metadata before/after).",
    )
    ADMIN_CHANGED = (
        "admin.changed",
        "An operator added, changed or deleted another record in the admin; resource_type "
        "names its model.",
    )
    OPERATOR_VIEWED_USER = (
        "operator.viewed_user",
        "An operator opened a person's account, sessions or events in the console or the API.",
    )
    AUDIT_EXPORTED = (
        "audit.exported",
        "An operator exported security events as CSV or JSON Lines; metadata has the filters.",
    )
    GDPR_EXPORTED = (
        "gdpr.exported",
        "An operator exported everything held about a person (GDPR Art. 15 and 20).",
    )
    GDPR_ERASED = (
        "gdpr.erased",
        "An operator erased a person (GDPR Art. 17); user_id is the pseudonym their events "
        "now carry.",
    )
    MFA_ENROLLED = (
        "mfa.enrolled",
        "A person added a second factor (TOTP, WebAuthn credential) or a new set of recovery "
        "codes; resource_type names the kind, metadata its name.",
    )
    MFA_REMOVED = (
        "mfa.removed",
        "A person removed one of their second factors, after authenticating afresh.",
    )
    MFA_SUCCEEDED = "mfa.succeeded", "A person proved a second factor; resource_type says which."
    MFA_FAILED = (
        "mfa.failed",
        "A second factor was refused; error_code says why (invalid_code, replayed_code, "
        "invalid_response, cloned_authenticator, unknown_credential).",
    )
    MFA_RECOVERY_CODE_USED = (
        "mfa.recovery_code_used",
        "A recovery code was used (each works once); metadata.remaining says how many are left.",
    )
    MFA_RESET = (
        "mfa.reset",
        "An operator removed every second factor of a person (actor_id says who).",
    )
    USER_BLOCKED = (
        "user.blocked",
        "A person was blocked from signing in (by an operator or a threat rule; actor_id None "
        "for a rule); metadata has the reason, the rule and until when.",
    )
    USER_UNBLOCKED = (
        "user.unblocked",
        "A block ended: an operator lifted it (actor_id) or its time passed (actor_id None).",
    )
    THREAT_ASSESSED = (
        "threat.assessed",
        "A sign-in attempt or later session activity was scored; metadata has the score "
        "(0-100), the reasons, the rules that matched and the action taken.",
    )
    THREAT_ALERTED = (
        "threat.alerted",
        "A threat rule raised an alert to operators (webhook, e-mail); metadata names the rule, "
        "the score and the channels it was sent to.",
    )
    THREAT_RULE_CHANGED = (
        "threat.rule_changed",
        "An administrator created, changed or deleted a threat rule; metadata has before and "
        "after.",
    )
    FEDERATION_FAILED = (
        "federation.failed",
        "A sign-in through an upstream provider was refused; error_code says why (state, "
        "upstream_error, invalid_id_token, unavailable …), metadata.provider which one.",
    )
    FEDERATION_LINKED = (
        "federation.linked",
        "An upstream identity was linked to an account (at a first sign-in after the person "
        "proved the account was theirs, by just-in-time provisioning, or from the security "
        "page); metadata names the provider and how.",
    )
    FEDERATION_UNLINKED = (
        "federation.unlinked",
        "An upstream identity was unlinked from an account (by the person or an operator).",
    )
    FEDERATION_PROVIDER_CHANGED = (
        "federation.provider_changed",
        "An administrator created, changed, enabled, disabled or deleted an upstream "
        "provider; metadata has before and after (never the secret).",
    )
    FEDERATION_MAPPED = (
        "federation.mapped",
        "A provider's mapping rules changed a person's organization memberships at sign-in; "
        "metadata lists what was added and removed.",
    )
    SESSION_STEPPED_UP = (
        "session.stepped_up",
        "A login session proved another factor (step-up); metadata has the methods added and "
        "the level before and after.",
    )
    CSP_VIOLATION = (
        "csp.violation",
        "A browser reported a Content-Security-Policy violation on one of our pages (an "
        "injection attempt or a page that breaks its policy); metadata: directive, blocked "
        "origin or keyword, document path, disposition.",
    )


class Severity(models.TextChoices):
    LOW = "low", "Routine: the system working as intended."
    MEDIUM = "medium", "Worth a look: a refusal, a change to who may do what."
    HIGH = "high", "Act on it: failed authentication, a leak detected, an operator's force."
    CRITICAL = "critical", "Act now: a compromise."


SOC2 = "SOC2"  # access control and change management (Trust Services Criteria CC6, CC7, CC8)
GDPR = "GDPR"  # processing of a person's data, consent, their rights (Art. 7, 15, 17, 30)


@dataclass(frozen=True)
class Rule:
    """How an event type is classified: severity when it succeeded and when it failed, and
    the compliance frameworks whose evidence it is."""

    severity: Severity
    failure_severity: Severity
    tags: tuple[str, ...]


def _rule(severity: Severity, failure: Severity, *tags: str) -> Rule:
    return Rule(severity, failure, tags)


L, M, H, C = Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL

# The one rule table: emit() takes severity and compliance tags from here, nowhere else.
RULES: dict[EventType, Rule] = {
    EventType.USER_CREATED: _rule(L, M, SOC2, GDPR),
    EventType.USER_CHANGED: _rule(M, M, SOC2, GDPR),
    EventType.USER_DELETED: _rule(H, H, SOC2, GDPR),
    EventType.EMAIL_VERIFICATION_SENT: _rule(L, M, SOC2, GDPR),
    EventType.EMAIL_VERIFIED: _rule(L, M, SOC2, GDPR),
    EventType.EMAIL_CHANGED: _rule(M, M, SOC2, GDPR),
    EventType.PASSWORD_RESET_REQUESTED: _rule(L, M, SOC2),
    EventType.PASSWORD_CHANGED: _rule(M, H, SOC2),
    EventType.REGISTRATION_REQUESTED: _rule(L, M, SOC2, GDPR),
    EventType.INVITATION_CHANGED: _rule(M, M, SOC2),
    EventType.MAIL_FAILED: _rule(M, M, SOC2),
    EventType.LOGIN_SUCCEEDED: _rule(L, H, SOC2),
    # One failed sign-in is routine; bursts are for rate limits and threat rules to raise.
    EventType.LOGIN_FAILED: _rule(L, L, SOC2),
    EventType.LOGOUT: _rule(L, M, SOC2),
    EventType.SESSION_REVOKED: _rule(M, M, SOC2),
    EventType.SESSION_EXPIRED: _rule(L, L, SOC2),
    EventType.SESSION_FLAGGED: _rule(M, M, SOC2),
    EventType.SESSION_COMPROMISED: _rule(C, C, SOC2),
    EventType.SESSION_LIMIT_REACHED: _rule(L, M, SOC2),
    EventType.SESSIONS_ENDED_ALL: _rule(H, H, SOC2),
    EventType.TOKEN_ISSUED: _rule(L, M, SOC2),
    EventType.TOKEN_REFRESHED: _rule(L, M, SOC2),
    EventType.CONSENT_GRANTED: _rule(L, M, SOC2, GDPR),
    EventType.CONSENT_REVOKED: _rule(L, M, SOC2, GDPR),
    EventType.TOKEN_REVOKED: _rule(L, M, SOC2),
    EventType.TOKEN_REUSE_DETECTED: _rule(H, H, SOC2),
    EventType.CLIENT_AUTH_FAILED: _rule(L, L, SOC2),
    EventType.OFFLINE_ACCESS_GRANTED: _rule(L, M, SOC2, GDPR),
    EventType.OFFLINE_ACCESS_REVOKED: _rule(L, M, SOC2, GDPR),
    EventType.RATELIMIT_EXCEEDED: _rule(M, M, SOC2),
    EventType.ACCOUNT_LOCKED: _rule(H, H, SOC2),
    EventType.ACCOUNT_UNLOCKED: _rule(M, M, SOC2),
    EventType.RATELIMIT_CLEARED: _rule(M, M, SOC2),
    EventType.CLIENT_CREATED: _rule(M, M, SOC2),
    EventType.CLIENT_CHANGED: _rule(M, M, SOC2),
    EventType.CLIENT_DELETED: _rule(H, H, SOC2),
    EventType.KEY_ROTATED: _rule(M, H, SOC2),
    EventType.MEMBERSHIP_CHANGED: _rule(M, M, SOC2),
    # GDPR: a person's memberships are processing of their data (Art. 30 records).
    EventType.PERMISSION_CHANGED: _rule(M, M, SOC2, GDPR),
    EventType.ADMIN_CHANGED: _rule(M, M, SOC2),
    EventType.OPERATOR_VIEWED_USER: _rule(L, M, SOC2, GDPR),
    EventType.AUDIT_EXPORTED: _rule(M, M, SOC2, GDPR),
    EventType.GDPR_EXPORTED: _rule(M, M, SOC2, GDPR),
    EventType.GDPR_ERASED: _rule(H, H, SOC2, GDPR),
    EventType.MFA_ENROLLED: _rule(M, M, SOC2),
    EventType.MFA_REMOVED: _rule(M, M, SOC2),
    # A failed second factor comes from someone who already has the password: worth a look.
    EventType.MFA_SUCCEEDED: _rule(L, M, SOC2),
    EventType.MFA_FAILED: _rule(M, M, SOC2),
    EventType.MFA_RECOVERY_CODE_USED: _rule(M, M, SOC2),
    EventType.MFA_RESET: _rule(H, H, SOC2),
    EventType.USER_BLOCKED: _rule(H, H, SOC2),
    EventType.USER_UNBLOCKED: _rule(M, M, SOC2),
    EventType.THREAT_ASSESSED: _rule(L, L, SOC2),
    EventType.THREAT_ALERTED: _rule(H, H, SOC2),
    EventType.THREAT_RULE_CHANGED: _rule(M, M, SOC2),
    EventType.SESSION_STEPPED_UP: _rule(L, M, SOC2),
    EventType.FEDERATION_FAILED: _rule(M, M, SOC2),
    EventType.FEDERATION_LINKED: _rule(M, M, SOC2, GDPR),
    EventType.FEDERATION_UNLINKED: _rule(M, M, SOC2, GDPR),
    EventType.FEDERATION_PROVIDER_CHANGED: _rule(M, H, SOC2),
    EventType.FEDERATION_MAPPED: _rule(M, M, SOC2, GDPR),
    # Reports come from anyone's browser: worth a look, rate limited, never proof alone.
    EventType.CSP_VIOLATION: _rule(M, M, SOC2),
}


def emit(
    event_type: EventType,
    *,
    user_id: object = None,
    actor_id: object = None,
    session_id: object = None,
    resource_type: str = "",
    resource_id: object = None,
    action: str = "",
    success: bool = True,
    error_code: str = "",
    error_message: str = "",
    metadata: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Record one security event; returns the event id once it is recorded: in the caller's
    transaction when there is one, else in this process's journal (core.outbox, core.journal).
    Raises core.errors.AuditUnavailable when it cannot be: the request must then fail.

    IP address, user agent, request id and duration come from the current request, when there
    is one; severity and compliance tags from RULES. `action` defaults to the verb of the event
    type ("issued" for token.issued).
    """
    if not isinstance(event_type, EventType):
        raise TypeError(f"emit() takes an EventType from the catalog, not {event_type!r}")
    rule = RULES[event_type]
    context = request_context.current()
    event_id = uuid.uuid4()
    values = {
        "id": event_id,
        "occurred_at": timezone.now(),
        "event_type": event_type.value,
        # Cut to their columns: a value as given by a client (a client id) may be any length.
        "user_id": _text(user_id)[:64],
        "actor_id": _text(actor_id)[:64],
        "session_id": _text(session_id)[:64],
        "resource_type": resource_type,
        "resource_id": _text(resource_id)[:128],
        "action": _text(action or event_type.value.rpartition(".")[2])[:64],
        "success": success,
        "error_code": _text(error_code)[:64],
        "error_message": _text(error_message)[:512],
        "ip_address": context.client_ip if context else None,
        "user_agent": _text(context.user_agent) if context else "",
        "request_id": context.request_id if context else "",
        "duration_ms": _duration_ms(context),
        "metadata": metadata or {},
        "severity": (rule.severity if success else rule.failure_severity).value,
        "compliance_tags": list(rule.tags),
    }
    outbox.write(values)
    metrics.count_event(values)  # the one place events become counters
    return event_id


def _duration_ms(context: request_context.RequestContext | None) -> float | None:
    if context is None or not context.started:
        return None
    return round((time.perf_counter() - context.started) * 1000, 3)


def _text(value: object) -> str:
    # PostgreSQL refuses NUL in text, and JSON/UTF-8 a lone surrogate (what Python makes of
    # undecodable input): the event, and with it the action, would fail. Both are replaced.
    if value is None:
        return ""
    text = str(value).replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
