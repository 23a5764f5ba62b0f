"""The browser session store (SESSION_ENGINE): django.contrib.sessions' database store, minus
two statements each sign-in paid for.

- A new key is drawn without asking the database whether it exists: 32 characters of 36 are
  about 165 bits from the CSPRNG, and a collision would fail the INSERT on the primary key,
  after which create() draws again (CreateError), so the SELECT before it protects nothing.
- cycle_key() (session fixation, OWASP ASVS 3.2.1: a new session id at authentication) drops
  the old row and key at once, as Django's does, but leaves the new key to be drawn when the
  response saves the session: one INSERT of the signed-in session instead of an INSERT of the
  anonymous data followed by an UPDATE with the login's. Until then `session_key` is None; no
  one reads it before the response.
- save() outside a transaction runs its one INSERT or UPDATE without Django's transaction
  around it: one statement in autocommit is atomic by itself, and BEGIN and COMMIT are two
  more round trips (Django wraps it so that a failed INSERT does not break a transaction the
  caller has open; inside one, Django's save runs unchanged).

Measured on the sign-in POST (tests/signin/test_statement_budget.py): 3 statements and 2
transaction commands → 1 statement.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.db import DatabaseError, IntegrityError, router, transaction
from django.utils.crypto import get_random_string


class SessionStore(db.SessionStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def cycle_key(self) -> None:
        self.keys()  # loads the data now: it stays cached once the key is gone
        old_key = self.session_key
        self._session_key = None
        self.modified = True
        if old_key:
            self.model.objects.filter(session_key=old_key).delete()

    def save(self, must_create: bool = False) -> None:
        using = router.db_for_write(self.model)
        if self.session_key is None or transaction.get_connection(using).in_atomic_block:
            return super().save(must_create)
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        row = self.create_model_instance(data)
        try:
            row.save(force_insert=must_create, force_update=not must_create, using=using)
        except IntegrityError:
            if must_create:
                raise CreateError from None  # create() draws another key
            raise
        except DatabaseError:
            if not must_create:
                raise UpdateError from None  # the row is gone (flushed elsewhere)
            raise
