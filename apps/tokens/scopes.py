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

A scope a request asks for and may not have is dropped from the grant (OIDC Core §3.1.2.1:
unknown scope values SHOULD be ignored; RFC 6749 §3.3: the `scope` of the token response says
what was granted); a request left with no scope at all is refused with invalid_scope.
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import SettingsScopes, get_scopes_backend

ADMIN_SCOPE = "admin"
OFFLINE_ACCESS = "offline_access"
# OIDC Core §3.1.2.1, §5.4, §11: scopes about a signed-in person.
PERSON_SCOPES = frozenset({"openid", "profile", "email", OFFLINE_ACCESS})


class TesseraScopes(SettingsScopes):
    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        scopes: list[str] = super().get_available_scopes(application, request, *args, **kwargs)
        if application is None or not application.skip_authorization:
            scopes = [scope for scope in scopes if scope != ADMIN_SCOPE]
        if application is None or "refresh_token" not in application.grant_type_set:
            scopes = [scope for scope in scopes if scope != OFFLINE_ACCESS]
        return scopes


class ScopeRefused(Exception):
    """Nothing asked for may be granted: invalid_scope, with a description that says why."""


def granted_scopes(requested: list[str], *, client: Any, person: bool = True) -> list[str]:
    """The scopes of `requested` this client may have, in the order asked, once each.
    Raises ScopeRefused when none is left."""
    available = set(get_scopes_backend().get_available_scopes(application=client))
    if not person:
        available -= PERSON_SCOPES
    asked = list(dict.fromkeys(requested))
    granted = [scope for scope in asked if scope in available]
    if asked and not granted:
        raise ScopeRefused(_refusal(asked))
    return granted


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
