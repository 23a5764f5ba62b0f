"""POST /api/v1/sessions/revoke-all: end every session of every person (OWASP ASVS 7.4.5),
for incident response, with the operator role as a single person's revoke needs. The
caller's own session (their token's sid, or the console session the call came with) is kept,
so the script that ends everything can go on working; it ends that one through
/api/v1/sessions/{id}/revoke when it is done. `manage.py end_all_sessions` ends every session
without exception."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from apps.console.permissions import OperatorWrites
from apps.sessions.selectors import session_current
from apps.sessions.services import END_EVERYONE_REQUEST_SECONDS, sessions_end_everyone


def own_session_id(request: Request) -> uuid.UUID | None:
    """The login session the caller's credentials belong to: a bearer token's sid (RFC 9068
    §2.2 carries it; a token from an offline grant has none), else the console session."""
    claims = request.auth if isinstance(request.auth, dict) else None
    if claims is not None:
        try:
            return uuid.UUID(str(claims["sid"])) if claims.get("sid") else None
        except ValueError:
            return None
    session = session_current(request._request)
    return session.pk if session is not None else None


@extend_schema(
    operation_id="sessions_revoke_all",
    summary="Revoke every live session of every person (incident response), except the caller's",
    description="Each session ends as a single revoke ends it: its access tokens are refused "
    "(its sid on the revocation list), its refresh tokens stop working, and the relying "
    "parties it signed in to are told over the back channel (OpenID Connect Back-Channel "
    "Logout 1.0). Recorded as session.revoked per session and one sessions.ended_all with the "
    "caller as actor and the count. The session the caller's credentials belong to is kept "
    "(`kept`); revoke it on its own when done. Sessions end 500 to a transaction, and one "
    "call works for about 20 seconds (100-130 sessions a second): `remaining` above 0 says "
    "the call stopped there; call again until it is 0. Offline grants stay.",
    request=None,
    responses=inline_serializer(
        "AllSessionsEnded",
        {
            "ended": serializers.IntegerField(help_text="How many sessions this request ended."),
            "remaining": serializers.IntegerField(
                help_text="Sessions begun before this request still live (the caller's aside): "
                "0 when every one has ended, else call again."
            ),
            "kept": serializers.UUIDField(
                allow_null=True, help_text="The caller's own session, left live (or null)."
            ),
        },
    ),
)
@api_view(["POST"])
@permission_classes([OperatorWrites])
def sessions_revoke_all(request: Request) -> Response:
    kept = own_session_id(request)
    run = sessions_end_everyone(
        reason="api", actor_id=request.user.pk, keep=kept, seconds=END_EVERYONE_REQUEST_SECONDS
    )
    return Response(
        {"ended": run.ended, "remaining": run.remaining, "kept": str(kept) if kept else None}
    )
