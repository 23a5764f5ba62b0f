"""Errors more than one app speaks of; apps/core imports no other app, so they live here."""


class LoginRefused(Exception):
    """A login that proved who the person is but is not allowed to begin (for example the
    per-user session limit with the `refuse` policy). The message is shown to the person."""
