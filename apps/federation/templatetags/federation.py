"""{% linked_accounts %}: the security page's "Linked accounts" section (the page is
apps/mfa's; mfa may not import federation, so the section comes in through its template)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.federation.selectors import identities_of, providers_enabled

register = template.Library()


@register.inclusion_tag("federation/linked.html", takes_context=True)
def linked_accounts(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    identities = identities_of(user_id=request.user.pk)
    linked = {i.provider_id for i in identities}
    return {
        "identities": identities,
        "available": [p for p in providers_enabled() if p.pk not in linked],
        "recent": context.get("recent", False),
        "confirm_url": context.get("confirm_url", ""),
        "csrf_token": context.get("csrf_token"),
    }
