"""Which scopes a client may be granted (DOT's SCOPES_BACKEND_CLASS, and the client_credentials
grant): the scopes of settings.SCOPES, except

- `admin`, which opens the admin API to the staff member a token is issued to, goes to
  first-party clients only (those registered with --skip-consent): a third-party relying party
  a staff member signs in to must not be able to ask that person for admin powers (OWASP ASVS
  1.4.3 least privilege, RFC 6749 §3.3);
- `offline_access` goes only to clients registered for the refresh_token grant (OIDC Core §11:
  it asks for a refresh token);
- a client_credentials token acts for no person, so the scopes that mean "a person signed in"
  or release a person's claims (openid, profile, email, offline_access) are not for it.

A scope a request asks for and may not have by these rules is dropped from the grant (OIDC
Core §3.1.2.1: unknown scope values SHOULD be ignored; RFC 6749 §3.3: the `scope` of the token
response says what was granted); a request left with no scope at all is refused with
invalid_scope.

On top of them, each client holds the list of scopes an operator assigned it
(Client.allowed_scopes; OWASP ASVS 10.4.11: only the scopes it needs, RFC 7591 §2 `scope`). A
scope the rules above would grant but that is not on the list is refused, not dropped
(invalid_scope, RFC 6749 §4.1.2.1 / §5.2, naming the scope: ours, never raw input), so that a
misregistered client fails where its developer looks instead of running on fewer scopes. A
grant made before the list was narrowed keeps only what is still on it (client_scopes): a
refresh never brings a scope back, and the answer's `scope` says what is left.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from oauth2_provider.scopes import SettingsScopes, get_scopes_backend

ADMIN_SCOPE = "admin"
OFFLINE_ACCESS = "offline_access"
# OIDC Core §3.1.2.1, §5.4, §11: scopes about a signed-in person.
PERSON_SCOPES = frozenset({"openid", "profile", "email", OFFLINE_ACCESS})


def rule_refusal(scope: str, *, grant_types: Iterable[str], first_party: bool) -> str:
    """Why the rules above never grant `scope` to such a client, or "" when they may: the one
    statement of them, for the grants (TesseraScopes) and for an operator's list
    (check_allowed_scopes)."""
    if scope == ADMIN_SCOPE and not first_party:
        return "admin is granted to first-party clients only."
    if scope == OFFLINE_ACCESS and "refresh_token" not in grant_types:
        return "offline_access needs the refresh_token grant (OIDC Core section 11)."
    return ""


class TesseraScopes(SettingsScopes):
    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        scopes: list[str] = super().get_available_scopes(application, request, *args, **kwargs)
        grant_types = application.grant_type_set if application is not None else ()
        first_party = application is not None and application.skip_authorization
        return [
            scope
            for scope in scopes
            if not rule_refusal(scope, grant_types=grant_types, first_party=first_party)
        ]


class ScopeRefused(Exception):
    """A scope asked for is not registered for the client, or nothing asked for may be
    granted: invalid_scope, with a description that says why."""


def _by_rules(client: Any, *, person: bool) -> set[str]:
    available = set(get_scopes_backend().get_available_scopes(application=client))
    return available if person else available - PERSON_SCOPES


def client_scopes(client: Any, *, person: bool = True) -> frozenset[str]:
    """What this client may be granted now: its allowed_scopes, within the rules above."""
    return frozenset(_by_rules(client, person=person) & client.allowed_scope_set)


def granted_scopes(requested: list[str], *, client: Any, person: bool = True) -> list[str]:
    """The scopes of `requested` this client may have, in the order asked, once each.
    Raises ScopeRefused for a scope it is not registered for (ASVS 10.4.11), and when none
    is left."""
    available = _by_rules(client, person=person)
    asked = list(dict.fromkeys(requested))
    registered = client.allowed_scope_set
    for scope in asked:
        if scope in available and scope not in registered:
            # RFC 6749 §4.1.2.1 / §5.2 invalid_scope; `scope` is one of ours (available)
            raise ScopeRefused(f"The scope {scope} is not registered for this client.")
    granted = [scope for scope in asked if scope in available]
    if asked and not granted:
        raise ScopeRefused(_refusal(asked))
    return granted


# OIDC Core §5.4: the scopes a relying party that signs people in asks for.
OIDC_BASICS = ("openid", "profile", "email")


def default_allowed_scopes(*, grant_types: list[str], first_party: bool) -> list[str]:
    """A new client's allowed_scopes when its registration names none: what its grants and
    type imply, nothing more (ASVS 10.4.11; a scope added to settings.SCOPES later is given
    to no client until an operator assigns it):

    - authorization_code: the OpenID Connect basics (openid profile email);
    - refresh_token with it: offline_access (OIDC Core §11: still only with consent to it);
    - first-party (skip_consent): admin, the one road to an admin-API token README documents
      (still only for an active staff member's token); take it off a first-party client that
      does not administer;
    - client_credentials alone: nothing but that (a service token carries no person scope).
    """
    scopes: list[str] = []
    if "authorization_code" in grant_types:
        scopes += OIDC_BASICS
        if "refresh_token" in grant_types:
            scopes.append(OFFLINE_ACCESS)
    if first_party:
        scopes.append(ADMIN_SCOPE)
    return [scope for scope in scopes if scope in settings.SCOPES]


def check_allowed_scopes(
    scopes: list[str], *, grant_types: list[str], first_party: bool
) -> list[str]:
    """An operator's allowed_scopes, once each, in the order given. Raises ValidationError
    keyed allowed_scopes for a scope this server does not define and for one the rules above
    would never grant this client (the list says what it can get, nothing it cannot)."""
    field = "allowed_scopes"
    chosen = list(dict.fromkeys(scopes))
    defined = list(settings.SCOPES)
    if any(scope not in settings.SCOPES for scope in chosen):
        # not repeated back: the list is what an operator may use
        raise ValidationError({field: f"Unknown scope: use {', '.join(defined)}."})
    for scope in chosen:
        refusal = rule_refusal(scope, grant_types=grant_types, first_party=first_party)
        if refusal:
            raise ValidationError({field: refusal})
    return chosen


def _refusal(asked: list[str]) -> str:
    """Names the scopes this server defines, and only counts the others: a description never
    reflects what the client sent (issue 20: invalid UTF-8 and control characters came back)."""
    defined = set(get_scopes_backend().get_all_scopes())
    named = [scope for scope in asked if scope in defined]
    unknown = len(asked) - len(named)
    if len(asked) == 1 and named:
        return f"The scope {named[0]} is not available to this client."
    if len(asked) == 1:
        return "The scope asked for is not one this server defines (see scopes_supported)."
    listed = named + ([f"{unknown} this server does not define"] if unknown else [])
    return f"None of the scopes asked for ({', '.join(listed)}) is available to this client."
