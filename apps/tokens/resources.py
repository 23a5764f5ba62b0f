"""The resources a client may ask tokens for (RFC 8707 resource indicators; OWASP ASVS 9.2.4:
a token is audience-restricted, and a client gets an audience only where it is registered).

Each client holds allowed_resources: absolute URIs matched exactly (as redirect URIs are:
no prefix or normalisation that a look-alike could slip through), or "*" alone for any
absolute URI (what migration 0012 gave the clients that existed before the list, so that
none lost an audience on upgrade). The default audience (settings.ACCESS_TOKEN_AUDIENCE:
userinfo, the admin API) is every client's; an empty list is that one only, a new client's
default. A `resource` outside the list is invalid_target (RFC 8707 §2), at the authorization
endpoint (pushed or not) and at the token endpoint for every grant; the description never
repeats the value sent (tests/hardening).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from oauth2_provider.oauth2_validators import is_valid_resource_uri

from apps.tokens.models import Client

ANY_RESOURCE = "*"
# A client's list is a handful of APIs; anything near this is a mistake or an attack on the
# row (and on every process's cached copy of it).
MAX_ALLOWED_RESOURCES = 50
MAX_RESOURCE_LENGTH = 2000

MALFORMED = "resource must be an absolute URI without userinfo or fragment (RFC 8707 section 2)."
NOT_REGISTERED = (
    "resource names a resource this client is not registered for (RFC 8707 section 2); "
    "without resource the token is for the default audience."
)


class TargetRefused(Exception):
    """RFC 8707 §2 invalid_target, with the description to send."""


def resource_refusal(resource: str, *, client: Client) -> str:
    """Why this client may not name `resource`, or "" when it may."""
    if not is_valid_resource_uri(resource):
        return MALFORMED
    allowed = client.allowed_resource_list
    if resource == settings.ACCESS_TOKEN_AUDIENCE or ANY_RESOURCE in allowed:
        return ""
    return "" if resource in allowed else NOT_REGISTERED


def token_audience(resources: list[str], *, client: Client) -> list[str]:
    """The access token's audience: the resources named, once each, or the default audience.
    Raises TargetRefused at the first one the client may not have."""
    for resource in resources:
        refusal = resource_refusal(resource, client=client)
        if refusal:
            raise TargetRefused(refusal)
    return list(dict.fromkeys(resources)) or [settings.ACCESS_TOKEN_AUDIENCE]


def check_allowed_resources(resources: list[str]) -> list[str]:
    """An operator's allowed_resources, once each. Raises ValidationError keyed
    allowed_resources; an entry at fault is named by its position, not repeated back."""
    field = "allowed_resources"
    chosen = list(dict.fromkeys(resources))
    if len(chosen) > MAX_ALLOWED_RESOURCES:
        raise ValidationError({field: f"At most {MAX_ALLOWED_RESOURCES} resources."})
    if ANY_RESOURCE in chosen:
        if len(chosen) > 1:
            raise ValidationError({field: '"*" (any resource) stands alone.'})
        return chosen
    for position, resource in enumerate(chosen, start=1):
        if (
            len(resource) > MAX_RESOURCE_LENGTH
            or not is_valid_resource_uri(resource)
            or any(char.isspace() for char in resource)  # stored space-separated
        ):
            raise ValidationError(
                {
                    field: f"Entry {position} is not an absolute URI without userinfo or "
                    f"fragment, of at most {MAX_RESOURCE_LENGTH} characters (RFC 8707 section "
                    '2), nor "*".'
                }
            )
    return chosen
