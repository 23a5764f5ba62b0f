"""Errors more than one app speaks of; apps/core imports no other app, so they live here."""

from django.core.exceptions import PermissionDenied


class AuditUnavailable(Exception):
    """A security event could not be recorded (the journal's disk is full, read-only or gone).

    The request it belongs to fails with 503 (core.middleware.UnavailableMiddleware):
    HashiCorp Vault's audit rule, an action whose audit record cannot be written is refused.
    """


class Refused(PermissionDenied):
    """A 403 whose message is written for the person refused ("This needs the operator
    role…"): the 403 page shows it (core.views.permission_denied). Any other PermissionDenied
    gets the generic text, since its message may not be meant for them."""
