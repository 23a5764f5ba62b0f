"""Writing threat rules (apps/threat/services.py): checked field by field, recorded with what
the rule was before and after, and seen by every process's ruleset at once."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import StaffRole
from apps.core.cache import CHANNEL
from apps.core.events import EventType
from apps.threat.models import ThreatRule
from apps.threat.ruleset import CACHE, Match, ruleset_current
from apps.threat.services import rule_create, rule_delete, rule_update
from tests.accounts.factories import UserFactory
from tests.events import recorded

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_other_rules() -> None:
    """Only the rules a test makes decide (the shipped ones may be in the database)."""
    ThreatRule.objects.all().delete()


@pytest.fixture
def admin():
    return UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)


def _create(admin, **fields) -> ThreatRule:
    values = {
        "name": "many_accounts",
        "condition": "not success and accounts_ip_1h >= 20",
        "action": "alert",
        "severity": "high",
        "description": "One IP tried twenty accounts in an hour.",
    } | fields
    return rule_create(actor_id=admin.pk, **values)


def _errors(raised: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {field: " ".join(messages) for field, messages in raised.value.message_dict.items()}


def test_create_records_the_rule_and_every_process_decides_by_it(admin) -> None:
    ruleset_current()  # cached before the change
    with recorded() as events:
        rule = _create(admin)
    assert rule.updated_by_id == admin.pk
    assert not rule.builtin
    [event] = events
    assert event.event_type == EventType.THREAT_RULE_CHANGED
    assert event.action == "created"
    assert event.actor_id == str(admin.pk)
    assert event.resource_type == "threat_rule"
    assert event.resource_id == str(rule.pk)
    assert event.metadata["rule"] == "many_accounts"
    assert event.metadata["before"] is None
    assert event.metadata["after"] == {
        "name": "many_accounts",
        "description": "One IP tried twenty accounts in an hour.",
        "condition": "not success and accounts_ip_1h >= 20",
        "action": "alert",
        "severity": "high",
        "enabled": True,
        "block_minutes": None,
    }
    # This process stops serving its cached rules at once ...
    matches = ruleset_current().decide({"success": False, "accounts_ip_1h": 25})
    assert Match("many_accounts", "alert", "high", None) in matches


def test_a_change_is_published_to_every_process_once_it_commits(
    admin, redis_client, django_capture_on_commit_callbacks
) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            rule = _create(admin)
        assert pubsub.get_message(timeout=0.2) is None  # not before the commit
        for callback in callbacks:
            callback()
        message = pubsub.get_message(timeout=2.0)
        assert message is not None
        assert message["data"] == f"{CACHE} *".encode()
        with django_capture_on_commit_callbacks(execute=True):
            rule_update(rule=rule, actor_id=admin.pk, enabled=False)
        message = pubsub.get_message(timeout=2.0)
        assert message is not None
        assert message["data"] == f"{CACHE} *".encode()
    finally:
        pubsub.close()
    assert "many_accounts" not in {spec.name for spec in ruleset_current()}


def test_update_records_before_and_after_and_the_fields_changed(admin) -> None:
    rule = _create(admin)
    assert "many_accounts" in {spec.name for spec in ruleset_current()}
    other = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    with recorded() as events:
        updated = rule_update(
            rule=rule,
            actor_id=other.pk,
            condition="not success and accounts_ip_1h >= 30",
            action="block",
            block_minutes=120,
        )
    assert updated is rule
    assert (rule.action, rule.block_minutes, rule.updated_by_id) == ("block", 120, other.pk)
    rule.refresh_from_db()
    assert rule.condition == "not success and accounts_ip_1h >= 30"
    [event] = events
    assert event.action == "updated"
    assert event.actor_id == str(other.pk)
    assert event.metadata["changed"] == ["condition", "action", "block_minutes"]
    assert event.metadata["before"]["condition"] == "not success and accounts_ip_1h >= 20"
    assert event.metadata["before"]["action"] == "alert"
    assert event.metadata["before"]["block_minutes"] is None
    assert event.metadata["after"]["condition"] == "not success and accounts_ip_1h >= 30"
    assert event.metadata["after"]["block_minutes"] == 120
    assert ruleset_current().decide({"accounts_ip_1h": 25}) == ()
    assert ruleset_current().decide({"accounts_ip_1h": 30}) == (
        Match("many_accounts", "block", "high", 120),
    )


def test_an_update_that_changes_nothing_records_nothing(admin) -> None:
    rule = _create(admin)
    with recorded() as events:
        rule_update(rule=rule, actor_id=admin.pk, severity="high", enabled=True)
    assert events == []


def test_delete_records_what_the_rule_was(admin) -> None:
    rule = _create(admin)
    assert "many_accounts" in {spec.name for spec in ruleset_current()}
    with recorded() as events:
        rule_delete(rule=rule, actor_id=admin.pk)
    assert not ThreatRule.objects.filter(pk=rule.pk).exists()
    [event] = events
    assert event.action == "deleted"
    assert event.metadata["before"]["name"] == "many_accounts"
    assert event.metadata["after"] is None
    assert "many_accounts" not in {spec.name for spec in ruleset_current()}
    with recorded() as events:
        rule_delete(rule=rule, actor_id=admin.pk)  # deleted meanwhile: nothing to record
    assert events == []


def test_a_shipped_rule_can_be_changed_and_disabled_but_not_deleted(admin) -> None:
    shipped = ThreatRule.objects.create(
        name="shipped", condition="success and ip_listed", action="require_mfa",
        severity="medium", builtin=True,
    )  # fmt: skip
    rule_update(rule=shipped, actor_id=admin.pk, severity="high")
    with recorded() as events:
        rule_update(rule=shipped, actor_id=admin.pk, enabled=False)
    assert events[0].metadata["builtin"] is True
    assert events[0].metadata["changed"] == ["enabled"]
    assert "shipped" not in {spec.name for spec in ruleset_current()}
    with pytest.raises(ValidationError) as raised, recorded() as events:
        rule_delete(rule=shipped, actor_id=admin.pk)
    assert "disable it instead" in _errors(raised)["builtin"]
    assert events == []
    assert ThreatRule.objects.filter(pk=shipped.pk, enabled=False).exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "Many Accounts"}, "name", "one word of letters, digits, _ and -"),
        ({"name": ""}, "name", "A rule needs a name."),
        ({"name": "x" * 65}, "name", "at most 64 characters"),
        ({"condition": "sucess"}, "condition", "unknown signal 'sucess'; did you mean 'success'?"),
        ({"condition": "score >="}, "condition", "line 1, col 9: the condition ends too early"),
        ({"condition": "success == 1"}, "condition", "cannot be compared with a number"),
        ({"condition": "__import__('os')"}, "condition", "function calls are not allowed"),
        ({"condition": "s" * 2001}, "condition", "at most 2000 are allowed"),
        ({"condition": None}, "condition", "A condition is text."),
        ({"action": "ban"}, "action", "Unknown action 'ban': one of alert, require_mfa"),
        ({"severity": "severe"}, "severity", "Unknown severity 'severe'"),
        ({"block_minutes": 60}, "block_minutes", "Only a rule whose action is block"),
        ({"action": "block", "block_minutes": 0}, "block_minutes", "from 1 to 525,600 minutes"),
        ({"action": "block", "block_minutes": 525_601}, "block_minutes", "from 1 to 525,600"),
        ({"action": "block", "block_minutes": True}, "block_minutes", "from 1 to 525,600"),
        ({"description": "d" * 501}, "description", "at most 500 characters"),
        ({"enabled": "yes"}, "enabled", "Enabled is true or false."),
    ],
)
def test_create_names_the_field_that_is_wrong(admin, fields, field, message) -> None:
    with pytest.raises(ValidationError) as raised, recorded() as events:
        _create(admin, **fields)
    errors = _errors(raised)
    assert message in errors[field]
    assert set(errors) == {field}
    assert events == []
    assert not ThreatRule.objects.filter(
        description="One IP tried twenty accounts in an hour."
    ).exists()


def test_every_wrong_field_is_named_at_once(admin) -> None:
    with pytest.raises(ValidationError) as raised:
        _create(admin, name="a b", condition="scor > 1", action="x", severity="y")
    assert set(_errors(raised)) == {"name", "condition", "action", "severity"}


def test_a_block_without_minutes_lasts_until_unblocked(admin) -> None:
    rule = _create(admin, action="block", severity="critical")
    assert rule.block_minutes is None
    assert ruleset_current().decide({"accounts_ip_1h": 20}) == (
        Match("many_accounts", "block", "critical", None),
    )


def test_names_are_unique(admin) -> None:
    first = _create(admin)
    with pytest.raises(ValidationError) as raised:
        _create(admin)
    assert _errors(raised) == {"name": "A rule named many_accounts exists already."}
    second = _create(admin, name="other")
    with pytest.raises(ValidationError) as raised:
        rule_update(rule=second, actor_id=admin.pk, name="many_accounts")
    assert "exists already" in _errors(raised)["name"]
    assert rule_update(rule=first, actor_id=admin.pk, name="renamed").name == "renamed"


def test_update_checks_the_rule_as_it_would_be(admin) -> None:
    rule = _create(admin, action="block", block_minutes=60)
    # Leaving block without clearing the duration is refused: the duration would be a lie.
    with pytest.raises(ValidationError) as raised:
        rule_update(rule=rule, actor_id=admin.pk, action="alert")
    assert "Only a rule whose action is block" in _errors(raised)["block_minutes"]
    rule_update(rule=rule, actor_id=admin.pk, action="alert", block_minutes=None)
    assert ThreatRule.objects.get(pk=rule.pk).action == "alert"


def test_update_refuses_fields_that_are_not_the_administrators(admin) -> None:
    rule = _create(admin)
    with pytest.raises(ValidationError) as raised:
        rule_update(rule=rule, actor_id=admin.pk, builtin=True, id="x")
    assert set(_errors(raised)) == {"builtin", "id"}
    assert ThreatRule.objects.get(pk=rule.pk).builtin is False
