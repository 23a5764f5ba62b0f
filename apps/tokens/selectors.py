from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from apps.tokens.models import BackchannelLogoutDelivery


def backchannel_deliveries(
    session_ids: Iterable[UUID | str], *, status: str = ""
) -> list[BackchannelLogoutDelivery]:
    """The back-channel logout deliveries of these login sessions (those in `status`, when
    given), newest first: which relying parties were told, and which were not (status,
    attempts, last error)."""
    deliveries = BackchannelLogoutDelivery.objects.filter(session_id__in=list(session_ids))
    if status:
        deliveries = deliveries.filter(status=status)
    return list(deliveries.order_by("-created_at", "client_id"))
