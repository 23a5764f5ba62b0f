"""Errors more than one app speaks of; apps/core imports no other app, so they live here."""


class AuditUnavailable(Exception):
    """A security event could not be recorded (the journal's disk is full, read-only or gone).

    The request it belongs to fails with 503 (core.middleware.AuditUnavailableMiddleware):
    HashiCorp Vault's audit rule, an action whose audit record cannot be written is refused.
    """
