"""Organization memberships from upstream claims (issue 17): a provider's mapping rules,
applied at each sign-in through it.

A rule is {"claim", "value", "organization" (slug), "role" (name)}. A claim matches when it
equals the value, or is a list that holds it (an upstream `groups` claim). The organizations
the rules name are owned by the rules: at each sign-in the person's membership there is set
to the role of the first matching rule for that organization, added when missing, and
removed when no rule for it matches — so a person taken out of a group upstream loses the
membership at their next sign-in here. Organizations no rule names are left alone.

Memberships change only through apps.accounts.directory (each change its own
permission.changed event, the system as actor); one `federation.mapped` event says what the
sign-in changed, and none is recorded when nothing did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from apps.accounts.directory import (
    organization_membership_add,
    organization_membership_remove,
    organization_membership_set_role,
)
from apps.accounts.models import Organization, OrganizationMembership, Role, User
from apps.accounts.selectors import role_for_organization
from apps.core.events import EventType, emit
from apps.federation.models import Provider

log = logging.getLogger(__name__)

RULE_KEYS = ("claim", "value", "organization", "role")
MAX_RULES = 50
CLAIM_MAX = 100  # a claim's name (OIDC Core §5.1 names are short; private ones too)
VALUE_MAX = 200


def mapping_rules_check(rules: object) -> list[dict[str, str]]:
    """The rules as stored, or ValidationError({"mapping_rules": "Rule n: …"}): each a mapping
    of exactly RULE_KEYS, claim and value non-empty strings, the organization an existing
    slug and the role a name usable in it (its own or built-in)."""
    if rules is None:
        return []
    if not isinstance(rules, list | tuple):
        raise _invalid("Mapping rules are a list of {claim, value, organization, role}.")
    if len(rules) > MAX_RULES:
        raise _invalid(f"Use at most {MAX_RULES} mapping rules ({len(rules)} given).")
    shaped = [_rule_shape(number, rule) for number, rule in enumerate(rules, start=1)]
    slugs = {rule["organization"] for rule in shaped}
    organizations = {o.slug: o for o in Organization.objects.filter(slug__in=slugs)}
    for number, rule in enumerate(shaped, start=1):
        organization = organizations.get(rule["organization"])
        if organization is None:
            raise _invalid(f"Rule {number}: no organization has the slug “{rule['organization']}”.")
        if role_for_organization(organization=organization, name=rule["role"]) is None:
            raise _invalid(
                f"Rule {number}: “{organization.name}” has no role “{rule['role']}” (its own "
                "or built-in)."
            )
    return shaped


def _rule_shape(number: int, rule: object) -> dict[str, str]:
    if not isinstance(rule, Mapping):
        raise _invalid(f"Rule {number}: a rule is {{claim, value, organization, role}}.")
    unknown = sorted(str(key) for key in rule if key not in RULE_KEYS)
    if unknown:
        raise _invalid(f"Rule {number}: unknown key “{unknown[0][:40]}”.")
    shaped: dict[str, str] = {}
    for key, maximum in (("claim", CLAIM_MAX), ("value", VALUE_MAX), ("organization", 100)):
        value = rule.get(key)
        if not isinstance(value, str) or not value.strip():
            raise _invalid(f"Rule {number}: {key} is a non-empty string.")
        if len(value) > maximum:
            raise _invalid(f"Rule {number}: {key} has at most {maximum} characters.")
        shaped[key] = value.strip() if key != "value" else value
    role = rule.get("role")
    if not isinstance(role, str) or not role.strip():
        raise _invalid(f"Rule {number}: role is a role's name.")
    if len(role) > 100:
        raise _invalid(f"Rule {number}: role has at most 100 characters.")
    shaped["role"] = role.strip()
    return shaped


def _invalid(message: str) -> ValidationError:
    return ValidationError({"mapping_rules": message}, code="invalid")


def claim_matches(claims: Mapping[str, Any], claim: str, value: str) -> bool:
    found = claims.get(claim)
    if isinstance(found, str):
        return found == value
    if isinstance(found, list | tuple):
        return any(isinstance(item, str) and item == value for item in found)
    return False


def mapping_apply(*, provider: Provider, user: User, claims: Mapping[str, Any]) -> None:
    """Set the person's memberships in the organizations the provider's rules name from the
    claims of this sign-in. Three reads when the provider has rules (none without), writes
    only for what changes. A rule whose organization or role has gone since it was saved is
    skipped with a warning (its organization left as it is): a sign-in is never refused for
    it, and an administrator sees the rule refused when they next save the provider."""
    rules: list[dict[str, str]] = [r for r in provider.mapping_rules or () if isinstance(r, dict)]
    if not rules:
        return
    wanted = _wanted_roles(rules, claims)
    organizations = {o.slug: o for o in Organization.objects.filter(slug__in=wanted)}
    roles = _roles(organizations.values(), {name for name in wanted.values() if name})
    memberships = {
        m.organization_id: m
        for m in OrganizationMembership.objects.filter(
            user=user, organization__in=list(organizations.values())
        ).select_related("role")
    }
    added: list[dict[str, str]] = []
    removed: list[dict[str, str]] = []
    changed: list[dict[str, str]] = []
    with transaction.atomic():
        for slug, role_name in wanted.items():
            organization = organizations.get(slug)
            if organization is None:
                log.warning("federation mapping: %s names no organization %r", provider.slug, slug)
                continue
            current = memberships.get(organization.pk)
            role = roles.get((organization.pk, role_name)) if role_name else None
            if role_name and role is None:
                log.warning(
                    "federation mapping: %s names no role %r in %r", provider.slug, role_name, slug
                )
                continue
            try:
                if role is None and current is not None:
                    organization_membership_remove(membership=current, actor_id=None)
                    removed.append({"organization": slug, "role": current.role.name})
                elif role is not None and current is None:
                    organization_membership_add(
                        organization=organization, user=user, role=role, actor_id=None
                    )
                    added.append({"organization": slug, "role": role.name})
                elif role is not None and current is not None and current.role_id != role.pk:
                    previous = current.role.name
                    organization_membership_set_role(membership=current, role=role, actor_id=None)
                    changed.append({"organization": slug, "from": previous, "to": role.name})
            except ValidationError as error:  # changed meanwhile by an operator: theirs stands
                log.warning("federation mapping: %s in %r: %s", provider.slug, slug, error)
        if added or removed or changed:
            emit(
                EventType.FEDERATION_MAPPED,
                user_id=user.pk,
                resource_type="provider",
                resource_id=provider.pk,
                metadata={
                    "provider": provider.slug,
                    "added": added,
                    "removed": removed,
                    "changed": changed,
                },
            )


def _wanted_roles(rules: list[dict[str, str]], claims: Mapping[str, Any]) -> dict[str, str]:
    """Organization slug → the role of its first matching rule, or "" when none matches."""
    wanted: dict[str, str] = {}
    for rule in rules:
        slug = rule.get("organization", "")
        if wanted.get(slug):
            continue  # an earlier rule matched already
        matched = claim_matches(claims, rule.get("claim", ""), rule.get("value", ""))
        wanted[slug] = rule.get("role", "") if matched else ""
    return wanted


def _roles(
    organizations: Iterable[Organization], names: set[str]
) -> dict[tuple[object, str], Role]:
    """(organization id, name) → the role that name means there: its own first, else the
    built-in one (as apps.accounts.selectors.role_for_organization), in one read."""
    organizations = list(organizations)
    if not organizations or not names:
        return {}
    found: dict[tuple[object, str], Role] = {}
    candidates = list(
        Role.objects.filter(
            Q(organization__in=organizations) | Q(organization__isnull=True), name__in=names
        )
    )
    for organization in organizations:
        for role in candidates:
            if role.organization_id == organization.pk:
                found[(organization.pk, role.name)] = role
        for role in candidates:
            if role.organization_id is None:
                found.setdefault((organization.pk, role.name), role)
    return found
