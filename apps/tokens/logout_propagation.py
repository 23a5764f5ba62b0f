"""Telling relying parties that a login session ended.

Back-Channel Logout 1.0: the worker POSTs a Logout Token to the backchannel_logout_uri of each
client that received tokens under the session (sessions.SessionClient), one task per client,
retried with exponential backoff; each delivery is recorded for operators. Front-Channel
Logout 1.0: the signed-out page loads each client's frontchannel_logout_uri in an iframe.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from oauthlib.common import add_params_to_uri

from apps.keys.keys import SigningKeyError
from apps.sessions.models import LoginSession, SessionClient
from apps.tokens.claims import new_jti, sign
from apps.tokens.clients import client_by_id
from apps.tokens.models import BackchannelLogoutDelivery, Client

# Back-Channel Logout 1.0 §2.4: the event that makes a JWT a Logout Token.
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# §2.4, RFC 8725 §3.11: explicit typing, so a Logout Token never passes for an ID token.
LOGOUT_TOKEN_TYPE = "logout+jwt"
LOGOUT_TOKEN_LIFETIME = 120  # seconds; every attempt signs a fresh token
DELIVERY_TIMEOUT = 5.0  # seconds a relying party may take to answer one POST
# Delays before the retries, in units of settings.BACKCHANNEL_RETRY_BASE_SECONDS
# (by default 2, 4, 8, 16 and 32 seconds): six attempts in about a minute.
RETRY_BACKOFF = (1, 2, 4, 8, 16)


def _session_clients(session: LoginSession) -> QuerySet[Client]:
    issued_to = SessionClient.objects.filter(session=session).values("client_id")
    clients: QuerySet[Client] = Client.objects.filter(client_id__in=issued_to).order_by("pk")
    return clients


def backchannel_deliveries_create(*, session: LoginSession) -> list[BackchannelLogoutDelivery]:
    """A pending delivery for each client of the session that registered a
    backchannel_logout_uri (Back-Channel Logout 1.0 §2.7: every RP of the session)."""
    client_ids = (
        _session_clients(session)
        .exclude(backchannel_logout_uri="")
        .values_list("client_id", flat=True)
    )
    return BackchannelLogoutDelivery.objects.bulk_create(
        BackchannelLogoutDelivery(session=session, client_id=client_id) for client_id in client_ids
    )


# A delivery still pending this long after its last attempt has no task left (the broker was
# down when its session ended, or a worker died holding it): the sweep queues it again.
STALLED_AFTER = timedelta(minutes=10)


def stalled_deliveries_claim() -> list[int]:
    """Ids of pending deliveries nothing is working on (see STALLED_AFTER), touched so that
    the next sweep leaves them to the task the caller queues."""
    now = timezone.now()
    pending = BackchannelLogoutDelivery.objects.filter(
        status=BackchannelLogoutDelivery.Status.PENDING
    )
    ids = list(
        pending.filter(updated_at__lt=now - STALLED_AFTER).values_list("pk", flat=True)[:1000]
    )
    pending.filter(pk__in=ids).update(updated_at=now)
    return ids


def logout_token(*, client: Client, session: LoginSession) -> str:
    """Back-Channel Logout 1.0 §2.4, signed like the client's ID tokens (§2.4: same keys)."""
    return _logout_token(
        client_id=client.client_id,
        alg=client.id_token_signed_response_alg,
        sub=str(session.user_id),
        sid=str(session.pk),
    )


def _logout_token(*, client_id: str, alg: str, sub: str, sid: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.ISSUER,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": new_jti(),
        "sub": sub,
        # §2.4: sid whenever the OP supports backchannel_logout_session_supported (we do)
        "sid": sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        # §2.4: a Logout Token MUST NOT contain a nonce claim
    }
    return sign(claims, alg=alg, typ=LOGOUT_TOKEN_TYPE)


# Sessions per task when a deleted client is told about each of its sessions.
DEPARTED_BATCH = 500


@dataclass(frozen=True)
class DepartedClient:
    """What telling a deleted client about its sessions needs once its row is gone."""

    client_id: str
    uri: str
    alg: str
    sessions: list[tuple[str, str]]  # (sid, sub) of each live session it holds tokens in


def departing_client(*, client: Client) -> DepartedClient | None:
    """Read before a client is deleted: its back-channel logout URI and the live sessions in
    which it received tokens; None when it registered no URI or holds no live session."""
    if not client.backchannel_logout_uri:
        return None
    live = SessionClient.objects.filter(
        client_id=client.client_id,
        session__ended_at__isnull=True,
        session__expires_at__gt=timezone.now(),
    )
    sessions = [
        (str(sid), str(sub)) for sid, sub in live.values_list("session_id", "session__user_id")
    ]
    if not sessions:
        return None
    return DepartedClient(
        client.client_id,
        client.backchannel_logout_uri,
        client.id_token_signed_response_alg,
        sessions,
    )


def departed_client_logouts_deliver(
    *, client_id: str, uri: str, alg: str, sessions: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Back-Channel Logout 1.0 §2.5 for a client an operator deleted: one Logout Token per
    session it held tokens in, so the relying party ends the sessions it keeps for them
    (its tokens no longer work). No delivery rows (the client is gone); returns the
    sessions whose token was not accepted, for the caller to retry."""
    failed = []
    for sid, sub in sessions:
        try:
            token = _logout_token(client_id=client_id, alg=alg, sub=sub, sid=sid)
        except SigningKeyError:  # retried like an unanswered delivery; keys logged why
            failed.append((sid, sub))
            continue
        if _post_logout_token(uri, token) is not None:
            failed.append((sid, sub))
    return failed


def backchannel_logout_deliver(*, delivery_id: int, final_attempt: bool) -> bool:
    """One delivery attempt, recorded on the delivery row. True when nothing is left to do
    (delivered, or this was the final attempt); False asks the caller to retry."""
    delivery = BackchannelLogoutDelivery.objects.select_related("session").get(pk=delivery_id)
    if delivery.status != BackchannelLogoutDelivery.Status.PENDING:
        return True  # a task redelivered after it had finished (acks_late)
    # A client an operator disabled is still told: its people signed out all the same.
    client = client_by_id(delivery.client_id) or (
        Client.objects.filter(client_id=delivery.client_id).first()
    )
    if client is None or not client.backchannel_logout_uri:
        error: str | None = "the client no longer has a backchannel_logout_uri"
    else:
        try:
            token = logout_token(client=client, session=delivery.session)
        except SigningKeyError as unsignable:  # an attempt that failed: retried with backoff
            error = f"cannot sign the logout token: {unsignable}"
        else:
            error = _post_logout_token(client.backchannel_logout_uri, token)
    delivery.attempts += 1
    delivery.last_error = (error or "")[:200]  # the column's length
    if error is None:
        delivery.status = BackchannelLogoutDelivery.Status.DELIVERED
    elif final_attempt:
        delivery.status = BackchannelLogoutDelivery.Status.FAILED
    delivery.save(update_fields=["attempts", "last_error", "status", "updated_at"])
    return delivery.status != BackchannelLogoutDelivery.Status.PENDING


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect answers with its 3xx status instead of being followed (the token goes to
    the registered URI only)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post_logout_token(uri: str, token: str) -> str | None:
    """Back-Channel Logout 1.0 §2.5: a form POST of logout_token; §2.8: 200 is success, and
    204 too (some frameworks answer it). Returns what went wrong, None on success."""
    request = urllib.request.Request(  # noqa: S310 - registered https (or opted-in http) URI
        uri,
        data=urlencode({"logout_token": token}).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with _opener.open(request, timeout=DELIVERY_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as refused:
        refused.close()
        status = refused.code
    except (OSError, http.client.HTTPException) as failed:
        return f"{type(failed).__name__}: {failed}"
    return None if status in (200, 204) else f"HTTP {status}"


def frontchannel_logout_uris(*, session: LoginSession) -> list[str]:
    """Front-Channel Logout 1.0 §4: the URI each client of the session registered, to load
    in an iframe; §3: with `iss` and `sid` added (its own query kept) when it asked for them."""
    session_params = [("iss", settings.ISSUER), ("sid", str(session.pk))]
    return [
        add_params_to_uri(client.frontchannel_logout_uri, session_params)
        if client.frontchannel_logout_session_required
        else client.frontchannel_logout_uri
        for client in _session_clients(session).exclude(frontchannel_logout_uri="")
    ]
