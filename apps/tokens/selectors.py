from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from apps.tokens.models import BackchannelLogoutDelivery


def backchannel_deliveries(session_ids: Iterable[UUID | str]) -> list[BackchannelLogoutDelivery]:
    """The back-channel logout deliveries of these login sessions, newest first: which
    relying parties were told, and which were not (status, attempts, last error)."""
    return list(
        BackchannelLogoutDelivery.objects.filter(session_id__in=list(session_ids)).order_by(
            "-created_at", "client_id"
        )
    )
