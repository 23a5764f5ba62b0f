"""Port: where a person's data lives, for their GDPR rights (Art. 15 and 20: access and
portability; Art. 17: erasure).

audit runs the subject export and the erasure (apps/audit/gdpr.py) and imports no other app
(DESIGN). Every app that keeps data about a person implements PersonalData, and
settings.PERSONAL_DATA_HOLDERS names the implementations: an export has their sections in that
order, and an erasure runs them in the reverse order, so the account, listed first, is
scrubbed last, after everything that refers to it. A new app that stores something about a
person adds its holder there, and the export and the erasure cover it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

# RFC 2606 §2: a domain that can never receive mail, for the address of an erased account.
ERASED_DOMAIN = "erased.invalid"
# What an erased person's pseudonym starts with (audit.store.base.pseudonym).
PSEUDONYM_PREFIX = "anon:"

# One record (a JSON object) or records (a JSON array), encodable by DjangoJSONEncoder.
Section = dict[str, Any] | Iterable[dict[str, Any]]


class PersonalData(Protocol):
    """`user` is an instance of settings.AUTH_USER_MODEL."""

    def export(self, user: Any) -> dict[str, Section]:
        """The sections of the person's export, by name, in the order they appear."""

    def erase(self, user: Any, *, pseudonym: str, actor_id: object) -> None:
        """Deletes or scrubs what the app holds about the person. Runs inside the erasure's
        transaction, with the person's row locked; `pseudonym` replaces them in the audit
        store."""


@cache
def holders() -> tuple[PersonalData, ...]:
    return tuple(import_string(path)() for path in settings.PERSONAL_DATA_HOLDERS)


def erased_email(pseudonym: str) -> str:
    return f"{pseudonym.removeprefix(PSEUDONYM_PREFIX)}@{ERASED_DOMAIN}"


def is_erased(email: str) -> bool:
    return email.endswith(f"@{ERASED_DOMAIN}")
