"""{% linked_accounts %}: the security page's "Linked accounts" section (the page is
apps/mfa's; mfa may not import federation, so the section comes in through its template)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.core.security_headers import form_action_open_for
from apps.federation.selectors import identities_of, providers_enabled

register = template.Library()


@register.inclusion_tag("federation/linked.html", takes_context=True)
def linked_accounts(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    identities = identities_of(user_id=request.user.pk)
    linked = {i.provider_id for i in identities}
    available = [p for p in providers_enabled() if p.pk not in linked]
    if available and context.get("recent", False):
        form_action_open_for(request)  # the "Link <provider>" forms end at the provider
    return {
        "identities": identities,
        "available": available,
        "recent": context.get("recent", False),
        "confirm_url": context.get("confirm_url", ""),
        "csrf_token": context.get("csrf_token"),
    }
