"""Errors more than one app speaks of; apps/core imports no other app, so they live here."""

import logging

from django.core.exceptions import PermissionDenied


class Unavailable(Exception):
    """What a request needs cannot be had for now (a dependency down, a key that does not
    open): the request is answered 503 temporarily_unavailable with Retry-After (RFC 6749
    §5.2, RFC 9110 §15.6.4) and logged once at `log_level` with this exception's message,
    which tells the operator what to do — never a 500 (core.middleware.UnavailableMiddleware,
    core.views.unavailable_response). A subclass says what the client reads and when to retry.
    """

    client_message = "The service is unavailable right now. Try again shortly."
    retry_after = 5  # seconds (RFC 9110 §10.2.3)
    # WARNING for an outage already reported once elsewhere (each request is one line then,
    # as for the database down); ERROR when this line is the operator's only word of it.
    log_level = logging.ERROR


class AuditUnavailable(Unavailable):
    """A security event could not be recorded (the journal's disk is full, read-only or gone).

    HashiCorp Vault's audit rule: an action whose audit record cannot be written is refused.
    """

    client_message = (
        "The service cannot record this request's audit event right now. Try again shortly."
    )


class Refused(PermissionDenied):
    """A 403 whose message is written for the person refused ("This needs the operator
    role…"): the 403 page shows it (core.views.permission_denied). Any other PermissionDenied
    gets the generic text, since its message may not be meant for them."""
