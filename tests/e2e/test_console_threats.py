"""An administrator on the console's threats page, in headless Chromium (issue 16): sees the
recent assessments with their reasons and the people blocked, edits a rule (a wrong condition
is refused next to the field, with the signal catalog beside it), and unblocks a person a rule
blocked. Screenshots are kept in test-artifacts/ for a person to look at."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import user_block, user_create
from apps.core.models import SecurityEvent
from apps.threat.models import ThreatRule
from apps.threat.services import rule_create
from tests.audit.factories import outbox_insert
from tests.console.test_threats_pages import assessed
from tests.e2e.browser_steps import shot

pytestmark = pytest.mark.django_db(transaction=True)

OPS_PASSWORD = "an administrator's long passphrase"


def test_an_administrator_edits_a_rule_and_unblocks_a_person(
    live_server, page, person, artifacts, empty_audit_store
) -> None:
    admin = user_create(email="ops@example.com", password=OPS_PASSWORD, staff_role="administrator")
    rule = rule_create(
        actor_id=None,
        name="impossible_travel_block",
        description="A success from the other side of the world, too soon after the last one.",
        condition="success and impossible_travel and score >= 70",
        action="block",
        severity="critical",
        block_minutes=None,
    )
    rule_create(
        actor_id=None,
        name="new_country_alert",
        condition="success and new_country",
        action="alert",
        severity="medium",
    )
    outbox_insert(
        [
            assessed(
                person,
                600,
                ip="198.51.100.7",
                score=5,
                action="allow",
                reasons=[],
                rules=[],
                country="FR",
                city="Lyon",
                asn=3215,
            ),
            assessed(
                person,
                60,
                score=85,
                action="block",
                reasons=[
                    {
                        "signal": "impossible_travel",
                        "points": 45,
                        "detail": "Lyon, FR → Tokyo, JP: 9,720 km in 9 min",
                    },
                    {"signal": "new_device", "points": 20, "detail": ""},
                    {"signal": "new_country", "points": 20, "detail": "JP"},
                ],
                rules=["impossible_travel_block", "new_country_alert"],
                country="JP",
                city="Tokyo",
                asn=2516,
            ),
        ]
    )
    user_block(
        user=person,
        actor_id=None,
        source="threat",
        reason="rule impossible_travel_block",
        rule="impossible_travel_block",
    )
    later = user_create(email="grace@example.com")
    user_block(
        user=later,
        actor_id=None,
        source="operator",
        reason="reported a phishing mail",
        until=timezone.now() + timedelta(hours=4),
    )
    problems: list[str] = []
    # The refused condition is a 400 on purpose (Chromium logs it too); anything else is a
    # problem, and the response handler below says which address answered it.
    page.on(
        "console",
        lambda m: "status of 400 (Bad Request)" not in m.text and problems.append(m.text),
    )
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and not (r.status == 400 and f"/threats/rules/{rule.pk}/" in r.url)
            and problems.append(f"{r.status} {r.url}")
        ),
    )

    page.goto(f"{live_server.url}/console/threats/")
    page.fill("#id_email", "ops@example.com")
    page.fill("#id_password", OPS_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/threats/")

    assessments = page.locator("table.assessments tbody tr")
    # The two recorded above; the operator's own sign-in to the console is assessed too, and
    # shows once this process's journal has moved its event to the outbox (a batch window
    # later), so the rows are found by what they say, not by their place.
    seeded = assessments.filter(has_text="ada@example.com")
    assert seeded.count() == 2
    newest = seeded.nth(0).inner_text()
    assert "Tokyo, JP" in newest
    assert "impossible_travel +45" in newest
    assert "85" in newest
    blocked = page.locator("table.blocked tbody tr")
    assert blocked.count() == 2
    assert "A threat response" in blocked.nth(1).inner_text()
    shot(page, artifacts, "console-threats.png")

    # Edit the rule: a typo in a signal is refused next to the condition.
    page.locator("table.rules tr", has_text="impossible_travel_block").get_by_role(
        "link", name="Edit"
    ).click()
    page.wait_for_url(f"{live_server.url}/console/threats/rules/{rule.pk}/")
    assert "The speed needed exceeds an airliner" in page.inner_text(".signal-catalog")
    page.fill("#id_condition", "success and impossible_travl and score >= 60")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#id_condition_error")
    assert "impossible_travl" in error.inner_text()
    shot(page, artifacts, "console-threat-rule-error.png")
    page.fill("#id_condition", "success and impossible_travel and score >= 60")
    page.fill("#id_block_minutes", "120")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}/console/threats/#rules")
    assert "Rule impossible_travel_block saved." in page.inner_text("[role=status]")
    row = page.locator("table.rules tr", has_text="impossible_travel_block").inner_text()
    assert "score >= 60" in row
    assert "for 120 min" in row
    rule.refresh_from_db()
    assert (rule.condition, rule.block_minutes) == (
        "success and impossible_travel and score >= 60",
        120,
    )

    # Unblock Ada from the blocked list: a confirmation, then she may sign in again.
    page.locator("table.blocked tr", has_text=person.email).get_by_role(
        "link", name="Unblock"
    ).click()
    assert page.inner_text("h1") == f"Unblock {person.email}?"
    page.fill("#id_reason", "she is in Tokyo for a conference; confirmed by phone")
    shot(page, artifacts, "console-threat-unblock-confirm.png")
    page.get_by_role("button", name="Unblock").click()
    page.wait_for_url(f"{live_server.url}/console/threats/")
    assert f"{person.email} is unblocked" in page.inner_text("[role=status]")
    assert page.locator("table.blocked tbody tr").count() == 1
    shot(page, artifacts, "console-threats-unblocked.png")

    # Her page: not blocked, and her risk timeline.
    page.locator("table.assessments tr", has_text="Tokyo").get_by_role(
        "link", name=person.email
    ).click()
    page.wait_for_url(f"{live_server.url}/console/users/{person.pk}/")
    assert "not blocked" in page.inner_text("dl.block-state")
    assert page.locator("table.assessments tbody tr").count() == 2
    page.locator("#threats").scroll_into_view_if_needed()
    shot(page, artifacts, "console-threat-person.png")

    person.refresh_from_db()
    assert not person.is_blocked()

    # And block her again by hand, for an hour.
    page.get_by_role("link", name="Block", exact=True).click()
    assert page.inner_text("h1") == f"Block {person.email}?"
    page.fill("#id_reason", "her phone was stolen at the conference")
    page.fill("#id_minutes", "60")
    shot(page, artifacts, "console-threat-block-confirm.png")
    page.get_by_role("button", name="Block").click()
    page.wait_for_url(f"{live_server.url}/console/users/{person.pk}/")
    assert "by an operator: her phone was stolen" in page.inner_text("dl.block-state")
    person.refresh_from_db()
    assert person.is_blocked()
    assert person.blocked_until is not None
    assert ThreatRule.objects.get(pk=rule.pk).updated_by_id == admin.pk
    by_admin = SecurityEvent.objects.filter(
        actor_id=str(admin.pk),
        event_type__in=["threat.rule_changed", "user.unblocked", "user.blocked"],
    ).values_list("event_type", flat=True)
    assert sorted(by_admin) == ["threat.rule_changed", "user.blocked", "user.unblocked"]
    assert problems == []
