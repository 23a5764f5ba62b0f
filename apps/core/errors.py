"""Errors more than one app speaks of; apps/core imports no other app, so they live here."""


class LoginRefused(Exception):
    """A login that proved who the person is but is not allowed to begin (for example the
    per-user session limit with the `refuse` policy). The message is shown to the person."""


class AuditUnavailable(Exception):
    """A security event could not be recorded (the journal's disk is full, read-only or gone).

    The request it belongs to fails with 503 (core.middleware.AuditUnavailableMiddleware):
    HashiCorp Vault's audit rule, an action whose audit record cannot be written is refused.
    """
