"""The console's threats page and the threat parts of a person's page (issue 16): recent risk
assessments with their reasons, filtered by score, action and person (from the audit store:
some shipped to ClickHouse, some still in the outbox); the people blocked now and their
unblocking; a block set by an operator; the rule list and its editor (administrators), with a
condition's error next to the field. Every change is recorded with its actor (OWASP ASVS
7.2.2); bad input is a 400 with a message, never a 500."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_block, user_create
from apps.audit.store import AuditEvent
from apps.core.models import SecurityEvent
from apps.threat.models import ThreatRule
from apps.threat.services import rule_create
from tests.audit.factories import audit_event, outbox_insert, ship_all
from tests.console.conftest import audited, csrf_token, signed_in_as

pytestmark = pytest.mark.django_db


def assessed(user: User | None, seconds_ago: float, **metadata: Any) -> AuditEvent:
    """A threat.assessed event as the assessor records it (apps.core.risk.RiskDecision in
    its metadata, in apps.threat.port's shape), `seconds_ago` before now."""
    metadata = {"kind": "sign_in", "success": True} | metadata
    if user is not None:
        metadata.setdefault("email", user.email)
    return audit_event(
        0,
        occurred_at=timezone.now() - timedelta(seconds=seconds_ago),
        event_type="threat.assessed",
        user_id=str(user.pk) if user else "",
        action="assessed",
        ip_address=metadata.pop("ip", "203.0.113.7"),
        metadata=metadata,
    )


@pytest.fixture
def ada(db) -> User:
    return user_create(email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def bob(db) -> User:
    return user_create(email="bob@example.com")


@pytest.fixture
def assessments(ada: User, bob: User) -> list[AuditEvent]:
    """Ada's blocked sign-in from Tokyo (shipped to ClickHouse), Bob's alert and an unknown
    address's quiet attempt (still in the outbox)."""
    events = [
        assessed(
            ada,
            30,
            score=85,
            action="block",
            reasons=[
                {"signal": "impossible_travel", "points": 45, "detail": "Lyon → Tokyo: 9,720 km"},
                {"signal": "new_device", "points": 20, "detail": ""},
            ],
            rules=["impossible_travel_block"],
            country="JP",
            city="Tokyo",
            asn=2516,
        ),
    ]
    outbox_insert(events)
    ship_all()
    later = [
        assessed(
            bob,
            20,
            ip="198.51.100.9",
            success=False,
            score=40,
            action="alert",
            reasons=[{"signal": "new_country", "points": 40, "detail": "FR"}],
            rules=["new_country_alert"],
            country="FR",
            city="Paris",
        ),
        assessed(None, 10, score=5, action="allow", reasons=[], email="who@example.net"),
    ]
    outbox_insert(later)
    return events + later


def rows(html: bytes, table: str) -> list[str]:
    """The text of each body row of the table with this class."""
    page = html.decode()
    body = re.search(rf'<table class="table compact {table}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, f"no {table} table"
    return [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", row)).split())
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def test_recent_assessments_with_their_reasons(viewer: HttpClient, assessments) -> None:
    response = viewer.get("/console/threats/")

    assert response.status_code == 200
    found = rows(response.content, "assessments")
    assert len(found) == 3
    newest, middle, oldest = found
    assert "who@example.net no account" in newest
    assert "allow" in newest
    assert "nothing unusual" in newest
    assert "bob@example.com" in middle
    assert "198.51.100.9" in middle
    assert "Paris, FR" in middle
    assert "sign-in · failed" in middle
    assert "40" in middle
    assert "alert" in middle
    assert "new_country +40 FR" in middle
    assert "ada@example.com" in oldest
    assert "Tokyo, JP · AS2516" in oldest
    assert "85 block impossible_travel_block" in oldest
    assert "impossible_travel +45 Lyon → Tokyo: 9,720 km" in oldest
    assert "new_device +20" in oldest


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"min_score": "40"}, ["bob@example.com", "ada@example.com"]),
        ({"min_score": "86"}, []),
        ({"action": "alert"}, ["bob@example.com"]),
        ({"action": "block", "min_score": "80"}, ["ada@example.com"]),
        ({"user": "ada@example.com"}, ["ada@example.com"]),
    ],
)
def test_assessments_are_filtered(
    viewer: HttpClient, assessments, query: dict[str, str], expected: list[str]
) -> None:
    response = viewer.get("/console/threats/", query)

    assert response.status_code == 200
    found = rows(response.content, "assessments")
    if not expected:
        assert found == ["No assessment matches."]
    else:
        assert [re.search(r"\S+@example\.com", row).group(0) for row in found] == expected  # type: ignore[union-attr]


def test_filtering_by_person_is_recorded_as_a_read_of_their_data(
    viewer: HttpClient, assessments, ada: User
) -> None:
    viewer.get("/console/threats/", {"user": str(ada.pk)})

    assert audited("operator.viewed_user", viewer.user)[0].user_id == str(ada.pk)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"min_score": "high"}, "A minimum score is a whole number from 0 to 100."),
        ({"min_score": "101"}, "less than or equal to 100"),
        ({"min_score": "-1"}, "greater than or equal to 0"),
        ({"action": "destroy"}, "An action is one of allow, alert, require_mfa"),
        ({"user": "nope"}, "A person is an email address or a user id"),
        ({"user": "ghost@example.com"}, "No account has this email address."),
        ({"after": "garbage"}, "This page link is malformed"),
    ],
)
def test_malformed_filters_say_what_is_wrong(
    viewer: HttpClient, query: dict[str, str], message: str
) -> None:
    response = viewer.get("/console/threats/", query)

    assert response.status_code == 400
    assert message in unescape(response.content.decode())


def test_keyset_pages_of_assessments(viewer: HttpClient, ada: User) -> None:
    outbox_insert([assessed(ada, 100 - i, score=i, action="allow") for i in range(55)])

    first = viewer.get("/console/threats/")
    link = re.search(r'href="\?([^"]+)#assessments">Older', first.content.decode())
    assert link
    second = viewer.get("/console/threats/?" + unescape(link.group(1)))

    assert len(rows(first.content, "assessments")) == 50
    assert len(rows(second.content, "assessments")) == 5


def test_blocked_people_listed_and_unblocked_by_an_operator(
    operator_staff: HttpClient, ada: User, bob: User
) -> None:
    user_block(user=ada, actor_id=None, source="threat", reason="rule impossible_travel_block")
    until = timezone.now() + timedelta(hours=2)
    user_block(user=bob, actor_id=None, source="operator", reason="phished", until=until)
    expired = user_create(email="old@example.com")
    user_block(user=expired, actor_id=None, source="operator", reason="x", until=timezone.now())

    page = operator_staff.get("/console/threats/")
    found = rows(page.content, "blocked")

    assert len(found) == 2  # a block whose time has passed is not listed
    assert found[0].startswith("bob@example.com")
    assert "An operator phished Unblock" in found[0]
    assert "until unblocked A threat response rule impossible_travel_block" in found[1]

    path = f"/console/users/{ada.pk}/unblock/?back=threats"
    confirm = operator_staff.get(path)
    assert confirm.status_code == 200
    assert "blocked (by a threat response" in unescape(confirm.content.decode())
    done = operator_staff.post(
        path,
        {"csrfmiddlewaretoken": csrf_token(confirm.content), "reason": "travelling, confirmed"},
        follow=True,
    )

    assert done.redirect_chain[-1][0] == "/console/threats/"
    assert "ada@example.com is unblocked" in done.content.decode()
    ada.refresh_from_db()
    assert not ada.is_blocked()
    assert ada.blocked_at is None
    [event] = audited("user.unblocked", operator_staff.user)  # type: ignore[attr-defined]
    assert event.user_id == str(ada.pk)
    assert event.metadata["reason"] == "travelling, confirmed"
    assert event.metadata["source"] == "threat"


def test_a_viewer_sees_blocked_people_without_acting(viewer: HttpClient, ada: User) -> None:
    user_block(user=ada, actor_id=None, source="threat", reason="rule")

    page = viewer.get("/console/threats/").content.decode()

    assert "ada@example.com" in page
    assert f"/console/users/{ada.pk}/unblock/" not in page
    assert "/console/threats/rules/new/" not in page  # rules: administrators'


def test_an_operator_blocks_a_person_for_a_while(operator_staff: HttpClient, ada: User) -> None:
    person_page = operator_staff.get(f"/console/users/{ada.pk}/").content.decode()
    assert f'href="/console/users/{ada.pk}/block/"' in person_page
    assert "not blocked" in person_page

    path = f"/console/users/{ada.pk}/block/"
    form = operator_staff.get(path)
    before = timezone.now()
    done = operator_staff.post(
        path,
        {"csrfmiddlewaretoken": csrf_token(form.content), "reason": "phished", "minutes": "90"},
        follow=True,
    )

    assert done.redirect_chain[-1][0] == f"/console/users/{ada.pk}/"
    page = " ".join(unescape(re.sub(r"<[^>]+>", " ", done.content.decode())).split())
    assert "ada@example.com is blocked until" in page
    assert "blocked since" in page
    assert "by an operator: phished" in page
    ada.refresh_from_db()
    assert ada.is_blocked()
    assert ada.blocked_by == "operator"
    assert ada.blocked_until is not None
    assert (
        before + timedelta(minutes=90)
        <= ada.blocked_until
        <= timezone.now() + timedelta(minutes=90)
    )
    [event] = audited("user.blocked", operator_staff.user)  # type: ignore[attr-defined]
    assert event.user_id == str(ada.pk)
    assert event.metadata["reason"] == "phished"


def test_a_block_without_minutes_lasts_until_unblocked(
    operator_staff: HttpClient, ada: User
) -> None:
    path = f"/console/users/{ada.pk}/block/"
    form = operator_staff.get(path)
    operator_staff.post(path, {"csrfmiddlewaretoken": csrf_token(form.content), "reason": "x"})

    ada.refresh_from_db()
    assert ada.is_blocked()
    assert ada.blocked_until is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reason": ""}, "Say why they are blocked."),
        ({"reason": "x" * 201}, "at most 200 characters"),
        ({"reason": "x", "minutes": "soon"}, "Minutes are a whole number."),
        ({"reason": "x", "minutes": "0"}, "greater than or equal to 1"),
    ],
)
def test_a_block_needs_a_reason_and_sane_minutes(
    operator_staff: HttpClient, ada: User, fields: dict[str, str], message: str
) -> None:
    path = f"/console/users/{ada.pk}/block/"
    form = operator_staff.get(path)

    response = operator_staff.post(
        path, {"csrfmiddlewaretoken": csrf_token(form.content), **fields}
    )

    assert response.status_code == 400
    assert message in unescape(response.content.decode())
    ada.refresh_from_db()
    assert not ada.is_blocked()
    assert not SecurityEvent.objects.filter(event_type="user.blocked").exists()


def test_the_person_page_shows_their_risk_timeline(
    viewer: HttpClient, ada: User, assessments
) -> None:
    page = viewer.get(f"/console/users/{ada.pk}/")

    found = rows(page.content, "assessments")
    assert len(found) == 1  # Ada's only; Bob's and the unknown address's are not hers
    assert "Tokyo, JP" in found[0]
    assert "85" in found[0]
    assert "impossible_travel +45" in found[0]
    assert f'href="/console/users/{ada.pk}/block/"' not in page.content.decode()  # viewer


# --- Rules (administrators) ---


def rule_form(http: HttpClient, path: str, **fields: Any) -> Any:
    page = http.get(path)
    assert page.status_code == 200
    data = {
        "name": "tor_block",
        "description": "",
        "condition": "ip_listed and score >= 50",
        "action": "block",
        "severity": "high",
        "block_minutes": "",
        "enabled": "on",
        **fields,
    }
    data = {k: v for k, v in data.items() if v is not None}
    return http.post(path, {"csrfmiddlewaretoken": csrf_token(page.content), **data}, follow=True)


def test_the_rule_editor_lists_every_signal_with_its_doc(administrator: HttpClient) -> None:
    page = unescape(administrator.get("/console/threats/rules/new/").content.decode())

    assert "<code>impossible_travel</code>" in page
    assert "The speed needed exceeds an airliner" in page
    assert "<code>score</code>" in page


def test_an_administrator_creates_a_rule(administrator: HttpClient) -> None:
    done = rule_form(administrator, "/console/threats/rules/new/", block_minutes="60")

    assert done.redirect_chain[-1][0] == "/console/threats/#rules"
    found = [r for r in rows(done.content, "rules") if r.startswith("tor_block")]
    assert len(found) == 1
    assert "ip_listed and score >= 50" in found[0]
    assert "for 60 min" in found[0]
    assert "enabled" in found[0]
    rule = ThreatRule.objects.get(name="tor_block")
    assert rule.updated_by_id == administrator.user.pk  # type: ignore[attr-defined]
    [event] = audited("threat.rule_changed", administrator.user)  # type: ignore[attr-defined]
    assert event.metadata["after"]["condition"] == "ip_listed and score >= 50"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"condition": "ip_listd and score >= 50"}, "condition", "ip_listd"),
        ({"condition": "__import__('os')"}, "condition", ""),
        ({"condition": ""}, "condition", "This field is required."),
        ({"name": "tor block"}, "name", "letters, digits, hyphens and underscores"),
        ({"action": "explode"}, "action", "Select a valid choice"),
        ({"action": "alert", "block_minutes": "30"}, "block_minutes", "Only a block lasts"),
    ],
)
def test_a_wrong_rule_is_refused_next_to_its_field(
    administrator: HttpClient, fields: dict[str, str], field: str, message: str
) -> None:
    response = rule_form(administrator, "/console/threats/rules/new/", **fields)

    assert response.status_code == 400
    error = re.search(
        rf'<p class="error" role="alert" id="id_{field}_error">(.*?)</p>', response.content.decode()
    )
    assert error, f"no error next to {field}"
    assert message in unescape(error.group(1))
    assert not ThreatRule.objects.filter(name__in=["tor_block", "tor block"]).exists()


def test_an_administrator_edits_disables_and_deletes_a_rule(administrator: HttpClient) -> None:
    admin = administrator.user  # type: ignore[attr-defined]
    rule = rule_create(
        actor_id=None, name="spray", condition="spray_accounts_1h >= 5", action="alert",
        severity="medium",
    )  # fmt: skip

    edited = rule_form(
        administrator,
        f"/console/threats/rules/{rule.pk}/",
        name="spray",
        condition="spray_accounts_1h >= 10",
        action="alert",
        severity="high",
    )
    assert "Rule spray saved." in edited.content.decode()
    rule.refresh_from_db()
    assert (rule.condition, rule.severity) == ("spray_accounts_1h >= 10", "high")

    path = f"/console/threats/rules/{rule.pk}/enabled/?enabled=no"
    page = administrator.get(path)
    administrator.post(path, {"csrfmiddlewaretoken": csrf_token(page.content)})
    rule.refresh_from_db()
    assert rule.enabled is False

    path = f"/console/threats/rules/{rule.pk}/delete/"
    page = administrator.get(path)
    assert "Delete the rule spray?" in page.content.decode()
    administrator.post(path, {"csrfmiddlewaretoken": csrf_token(page.content)})
    assert not ThreatRule.objects.filter(pk=rule.pk).exists()

    events = audited("threat.rule_changed", admin)
    assert sorted(e.action for e in events) == ["deleted", "updated", "updated"]


def test_a_shipped_rule_is_disabled_not_deleted(administrator: HttpClient) -> None:
    rule = rule_create(
        actor_id=None, name="shipped", condition="impossible_travel", action="alert",
        severity="high",
    )  # fmt: skip
    ThreatRule.objects.filter(pk=rule.pk).update(builtin=True)

    listing = administrator.get("/console/threats/")
    path = f"/console/threats/rules/{rule.pk}/delete/"
    asked = administrator.get(path)
    token = csrf_token(administrator.get("/console/threats/rules/new/").content)
    response = administrator.post(path, {"csrfmiddlewaretoken": token})

    assert path not in listing.content.decode()
    for refused in (asked, response):
        assert refused.status_code == 400
        assert "ships with Tessera: disable it" in refused.content.decode()
    assert ThreatRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/console/threats/rules/{id}/enabled/",
        "/console/threats/rules/{id}/enabled/?enabled=maybe",
    ],
)
def test_enabling_needs_a_clear_state(administrator: HttpClient, path: str) -> None:
    rule = rule_create(
        actor_id=None, name="r", condition="new_device", action="alert", severity="low"
    )

    response = administrator.get(path.format(id=rule.pk))

    assert response.status_code == 400
    assert "Say enabled=yes or enabled=no." in response.content.decode()


def test_an_unknown_rule_is_404(administrator: HttpClient) -> None:
    assert administrator.get(f"/console/threats/rules/{uuid.uuid4()}/").status_code == 404


def test_an_operator_may_not_edit_rules(db) -> None:
    http = signed_in_as("operator")

    response = http.get("/console/threats/rules/new/")

    assert response.status_code == 403
    assert "This needs the administrator role" in response.content.decode()
