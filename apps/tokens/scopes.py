"""Which scopes a client may be granted (DOT's SCOPES_BACKEND_CLASS, and the client_credentials
grant): the scopes of settings.SCOPES, except that the admin scope, which opens the admin API
to the staff member a token is issued to, goes to first-party clients only (those registered
with --skip-consent). A third-party relying party a staff member signs in to must not be able
to ask that person for admin powers (OWASP ASVS 1.4.3 least privilege, RFC 6749 §3.3)."""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import SettingsScopes

ADMIN_SCOPE = "admin"


class TesseraScopes(SettingsScopes):
    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        scopes: list[str] = super().get_available_scopes(application, request, *args, **kwargs)
        if application is None or not application.skip_authorization:
            scopes = [scope for scope in scopes if scope != ADMIN_SCOPE]
        return scopes
