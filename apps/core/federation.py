"""Port: what the hosted sign-in page (apps/signin) knows of upstream identity providers, which
it may not import (DESIGN: only idp and console import federation; federation imports signin).

- `buttons()`: the enabled providers, one "Sign in with <name>" button each;
- `route(idp_hint=, login_hint=)`: the provider an authorization request names by `idp_hint`
  (its slug, as Keycloak's kc_idp_hint) or whose e-mail domains a `login_hint` address is in
  (home-realm discovery), or None: the page is shown.

apps.federation.selectors.Directory implements it, named by settings.FEDERATION_DIRECTORY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ProviderButton:
    slug: str
    name: str
    kind: str  # "oidc", "github", "google": the button's icon


class UpstreamDirectory(Protocol):
    def buttons(self) -> list[ProviderButton]: ...

    def route(self, *, idp_hint: str, login_hint: str) -> str | None: ...


def upstream_directory() -> UpstreamDirectory:
    directory: UpstreamDirectory = import_string(settings.FEDERATION_DIRECTORY)()
    return directory
