"""The admin API's threat endpoints (issue 16): assessments filtered by score, action and
person; the people blocked now; block and unblock (operators); the rules (administrators).
Each change is recorded with the caller as actor; every malformed input is a 400 naming the
field, never a 500 (OWASP ASVS 5.1.3)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_block, user_create
from apps.threat.models import ThreatRule
from apps.threat.services import rule_create
from tests.audit.factories import outbox_insert, ship_all
from tests.console.conftest import audited, signed_in_as
from tests.console.test_threats_pages import assessed

pytestmark = pytest.mark.django_db


# API callers: a script's session without a browser's CSRF dance (the role tests and
# test_api.py cover bearer tokens and CSRF).
@pytest.fixture
def viewer(db) -> HttpClient:
    return signed_in_as("viewer", enforce_csrf_checks=False)


@pytest.fixture
def operator_staff(db) -> HttpClient:
    return signed_in_as("operator", enforce_csrf_checks=False)


@pytest.fixture
def administrator(db) -> HttpClient:
    return signed_in_as("administrator", enforce_csrf_checks=False)


@pytest.fixture
def ada(db) -> User:
    return user_create(email="ada@example.com")


@pytest.fixture
def bob(db) -> User:
    return user_create(email="bob@example.com")


def post(http: HttpClient, path: str, body: Any, method: str = "post") -> Any:
    return getattr(http, method)(path, body, content_type="application/json")


def test_assessments_with_filters(viewer: HttpClient, ada: User, bob: User) -> None:
    outbox_insert(
        [
            assessed(
                ada,
                30,
                score=85,
                action="block",
                reasons=[{"signal": "impossible_travel", "points": 45, "detail": "9,720 km"}],
                rules=["impossible_travel_block"],
                country="JP",
                city="Tokyo",
                asn=2516,
            )
        ]
    )
    ship_all()
    outbox_insert([assessed(bob, 20, score=40, action="alert", reasons=[], rules=[])])

    every = viewer.get("/api/v1/threats/assessments").json()
    high = viewer.get("/api/v1/threats/assessments", {"min_score": 50}).json()
    alerts = viewer.get("/api/v1/threats/assessments", {"action": "alert"}).json()
    hers = viewer.get("/api/v1/threats/assessments", {"user": "ada@example.com"}).json()
    paged = viewer.get("/api/v1/threats/assessments", {"limit": 1}).json()

    assert [a["email"] for a in every["results"]] == ["bob@example.com", "ada@example.com"]
    first = every["results"][1]
    assert first["score"] == 85
    assert first["action"] == "block"
    assert (first["country"], first["city"], first["asn"]) == ("JP", "Tokyo", 2516)
    assert first["reasons"] == [{"signal": "impossible_travel", "points": 45, "detail": "9,720 km"}]
    assert first["rules"] == ["impossible_travel_block"]
    assert first["ip_address"] == "203.0.113.7"
    assert first["user_id"] == str(ada.pk)
    assert first["kind"] == "sign-in"
    assert first["success"] is True
    assert every["next"] is None
    assert [a["email"] for a in high["results"]] == ["ada@example.com"]
    assert [a["email"] for a in alerts["results"]] == ["bob@example.com"]
    assert [a["email"] for a in hers["results"]] == ["ada@example.com"]
    assert len(paged["results"]) == 1
    assert paged["next"]
    rest = viewer.get("/api/v1/threats/assessments", {"limit": 1, "after": paged["next"]}).json()
    assert [a["email"] for a in rest["results"]] == ["ada@example.com"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"min_score": "high"}, "min_score"),
        ({"min_score": "101"}, "min_score"),
        ({"min_score": "-5"}, "min_score"),
        ({"action": "explode"}, "action"),
        ({"user": "not-an-id"}, "user"),
        ({"after": "garbage"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"limit": "1001"}, "limit"),
    ],
)
def test_malformed_assessment_filters_name_the_field(
    viewer: HttpClient, query: dict[str, str], field: str
) -> None:
    response = viewer.get("/api/v1/threats/assessments", query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_blocked_people(viewer: HttpClient, ada: User, bob: User) -> None:
    user_block(user=ada, actor_id=None, source="threat", reason="rule x", rule="x")
    until = timezone.now() + timedelta(hours=1)
    user_block(user=bob, actor_id=None, source="operator", reason="phished", until=until)

    body = viewer.get("/api/v1/threats/blocked").json()
    second = viewer.get("/api/v1/threats/blocked", {"limit": 1, "offset": 1}).json()

    assert body["total"] == 2
    assert [p["email"] for p in body["results"]] == ["bob@example.com", "ada@example.com"]
    assert body["results"][0]["blocked"] is True
    assert body["results"][0]["blocked_by"] == "operator"
    assert body["results"][0]["blocked_reason"] == "phished"
    assert body["results"][1]["blocked_until"] is None
    assert [p["email"] for p in second["results"]] == ["ada@example.com"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": "0"}, "limit"), ({"offset": "-1"}, "offset"), ({"limit": "x"}, "limit")],
)
def test_malformed_blocked_query_names_the_field(
    viewer: HttpClient, query: dict[str, str], field: str
) -> None:
    response = viewer.get("/api/v1/threats/blocked", query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_operator_blocks_and_unblocks(operator_staff: HttpClient, ada: User) -> None:
    actor = operator_staff.user  # type: ignore[attr-defined]

    blocked = post(operator_staff, f"/api/v1/users/{ada.pk}/block", {"reason": "phished"})
    again = post(operator_staff, f"/api/v1/users/{ada.pk}/block", {"reason": "phished"})
    lifted = post(operator_staff, f"/api/v1/users/{ada.pk}/unblock", {"reason": "ok now"})
    twice = post(operator_staff, f"/api/v1/users/{ada.pk}/unblock", {})

    assert blocked.status_code == 200
    assert blocked.json()["changed"] is True
    assert blocked.json()["user"]["blocked"] is True
    assert blocked.json()["user"]["blocked_until"] is None
    assert again.json()["changed"] is False  # a block until unblocked holds already
    assert lifted.json()["changed"] is True
    assert lifted.json()["user"]["blocked"] is False
    assert twice.json()["changed"] is False
    [block_event] = audited("user.blocked", actor)
    assert block_event.user_id == str(ada.pk)
    assert block_event.metadata["source"] == "operator"
    [unblock_event] = audited("user.unblocked", actor)
    assert unblock_event.metadata["reason"] == "ok now"


def test_a_block_for_some_minutes(operator_staff: HttpClient, ada: User) -> None:
    before = timezone.now()

    body = post(
        operator_staff, f"/api/v1/users/{ada.pk}/block", {"reason": "r", "minutes": 30}
    ).json()

    ada.refresh_from_db()
    assert ada.blocked_until is not None
    assert before + timedelta(minutes=30) <= ada.blocked_until
    assert ada.blocked_until <= timezone.now() + timedelta(minutes=30)
    assert body["user"]["blocked_until"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 201}, "reason"),
        ({"reason": "x", "minutes": 0}, "minutes"),
        ({"reason": "x", "minutes": "soon"}, "minutes"),
        ({"reason": "x", "minutes": 10**9}, "minutes"),
        (["reason"], "non_field_errors"),
    ],
)
def test_a_malformed_block_names_the_field(
    operator_staff: HttpClient, ada: User, body: Any, field: str
) -> None:
    response = post(operator_staff, f"/api/v1/users/{ada.pk}/block", body)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    ada.refresh_from_db()
    assert ada.blocked_at is None


def test_a_body_that_is_not_json_is_400(operator_staff: HttpClient, ada: User) -> None:
    response = operator_staff.post(
        f"/api/v1/users/{ada.pk}/block", "{nope", content_type="application/json"
    )

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_blocking_an_unknown_user_is_404(operator_staff: HttpClient) -> None:
    response = post(operator_staff, f"/api/v1/users/{uuid.uuid4()}/block", {"reason": "x"})

    assert response.status_code == 404


def test_a_viewer_may_not_block(viewer: HttpClient, ada: User) -> None:
    response = post(viewer, f"/api/v1/users/{ada.pk}/block", {"reason": "x"})

    assert response.status_code == 403
    assert "operator role" in response.json()["detail"]


# --- Rules ---

RULE = {
    "name": "tor_block",
    "condition": "ip_listed and score >= 50",
    "action": "block",
    "severity": "high",
    "block_minutes": 60,
}


def test_an_administrator_manages_rules(administrator: HttpClient, viewer: HttpClient) -> None:
    actor = administrator.user  # type: ignore[attr-defined]

    created = post(administrator, "/api/v1/threats/rules", RULE)
    rule_id = created.json()["id"]
    listed = viewer.get("/api/v1/threats/rules").json()
    one = viewer.get(f"/api/v1/threats/rules/{rule_id}").json()
    patched = post(
        administrator, f"/api/v1/threats/rules/{rule_id}", {"enabled": False}, method="patch"
    )
    deleted = administrator.delete(f"/api/v1/threats/rules/{rule_id}")

    assert created.status_code == 201
    assert created.json()["enabled"] is True
    assert created.json()["builtin"] is False
    assert created.json()["updated_by"] == str(actor.pk)
    assert "tor_block" in [r["name"] for r in listed["results"]]
    assert one["condition"] == "ip_listed and score >= 50"
    assert one["block_minutes"] == 60
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    assert patched.json()["condition"] == RULE["condition"]  # the rest as it was
    assert deleted.status_code == 204
    assert not ThreatRule.objects.filter(pk=rule_id).exists()
    events = audited("threat.rule_changed", actor)
    assert sorted(e.action for e in events) == ["created", "deleted", "updated"]
    updated = next(e for e in events if e.action == "updated")
    assert updated.metadata["before"]["enabled"] is True
    assert updated.metadata["after"]["enabled"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**RULE, "condition": "ip_listd"}, "condition"),
        ({**RULE, "condition": "open('x')"}, "condition"),
        ({**RULE, "condition": "x" * 2001}, "condition"),
        ({**RULE, "name": "has space"}, "name"),
        ({**RULE, "action": "explode"}, "action"),
        ({**RULE, "severity": "apocalyptic"}, "severity"),
        ({**RULE, "enabled": "yes"}, "enabled"),
        ({**RULE, "block_minutes": 0}, "block_minutes"),
        ({k: v for k, v in RULE.items() if k != "condition"}, "condition"),
    ],
)
def test_a_malformed_rule_names_the_field(
    administrator: HttpClient, body: dict[str, Any], field: str
) -> None:
    response = post(administrator, "/api/v1/threats/rules", body)

    assert response.status_code == 400
    assert field in response.json()
    assert not ThreatRule.objects.filter(name=body.get("name", "")).exists()


def test_a_condition_error_says_where(administrator: HttpClient) -> None:
    response = post(administrator, "/api/v1/threats/rules", {**RULE, "condition": "ip_listd"})

    assert "ip_listd" in response.json()["condition"][0]


def test_a_duplicate_name_is_refused(administrator: HttpClient) -> None:
    post(administrator, "/api/v1/threats/rules", RULE)

    again = post(administrator, "/api/v1/threats/rules", RULE)

    assert again.status_code == 400
    assert list(again.json()) == ["name"]


def test_a_patch_checks_what_it_changes(administrator: HttpClient) -> None:
    rule = rule_create(
        actor_id=None, name="r", condition="new_device", action="alert", severity="low"
    )

    response = post(
        administrator, f"/api/v1/threats/rules/{rule.pk}", {"condition": "nope"}, method="patch"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["condition"]
    rule.refresh_from_db()
    assert rule.condition == "new_device"


@pytest.mark.parametrize("body", [{"builtin": False}, {"id": "x", "enabled": False}])
def test_a_patch_of_a_field_no_one_may_change_is_refused(
    administrator: HttpClient, body: dict[str, Any]
) -> None:
    rule = rule_create(
        actor_id=None, name="r", condition="new_device", action="alert", severity="low"
    )

    response = post(administrator, f"/api/v1/threats/rules/{rule.pk}", body, method="patch")

    assert response.status_code == 400
    assert set(response.json()) == set(body) - {"enabled"}
    rule.refresh_from_db()
    assert rule.enabled is True


def test_a_shipped_rule_cannot_be_deleted(administrator: HttpClient) -> None:
    rule = rule_create(
        actor_id=None, name="shipped", condition="new_device", action="alert", severity="low"
    )
    ThreatRule.objects.filter(pk=rule.pk).update(builtin=True)

    response = administrator.delete(f"/api/v1/threats/rules/{rule.pk}")

    assert response.status_code == 400
    assert "disable it" in str(response.json())
    assert ThreatRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_administrators_change_rules(db, role: str) -> None:
    http = signed_in_as(role, enforce_csrf_checks=False)

    response = post(http, "/api/v1/threats/rules", RULE)

    assert response.status_code == 403
    assert "administrator role" in response.json()["detail"]
    assert http.get("/api/v1/threats/rules").status_code == 200


def test_an_unknown_rule_is_404(viewer: HttpClient) -> None:
    assert viewer.get(f"/api/v1/threats/rules/{uuid.uuid4()}").status_code == 404
