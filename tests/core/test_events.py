"""The security-event catalog and its transactional outbox (foundation issue)."""

from __future__ import annotations

import uuid

import pytest
from django.db import DataError, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from apps.core.events import RULES, EventType, emit
from apps.core.models import SecurityEvent
from apps.core.request_context import RequestContextMiddleware


def test_every_catalog_event_has_a_dotted_name_and_one_line_of_doc() -> None:
    for event in EventType:
        assert event.value == event.value.lower()
        assert " " not in event.value
        assert event.label.endswith(".")
        assert "\n" not in event.label


@pytest.mark.django_db(transaction=True)
def test_event_commits_with_the_change_it_records() -> None:
    with transaction.atomic():
        emit(EventType.CLIENT_CREATED, resource_type="client", resource_id="c1")

    assert SecurityEvent.objects.filter(event_type="client.created", resource_id="c1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_rolled_back_change_leaves_no_event() -> None:
    class ChangeFailed(Exception):
        pass

    @transaction.atomic
    def failing_change() -> None:
        emit(EventType.CLIENT_CREATED, resource_type="client", resource_id="c2")
        raise ChangeFailed

    with pytest.raises(ChangeFailed):
        failing_change()

    assert not SecurityEvent.objects.filter(resource_id="c2").exists()


@pytest.mark.django_db
def test_events_are_append_only() -> None:
    event = SecurityEvent.objects.get(id=emit(EventType.LOGOUT, user_id="u"))
    event.user_id = "someone-else"

    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    assert SecurityEvent.objects.get(id=event.id).user_id == "u"


@pytest.mark.django_db
def test_emit_refuses_anything_outside_the_catalog() -> None:
    with pytest.raises(TypeError, match="catalog"):
        emit("login.succeeded")  # type: ignore[arg-type]
    assert not SecurityEvent.objects.exists()


@pytest.mark.django_db
def test_event_inside_a_request_carries_its_ip_user_agent_and_request_id() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        emit(EventType.LOGIN_FAILED, success=False, metadata={"reason": "bad_password"})
        return HttpResponse()

    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="probe/1.0")
    response = RequestContextMiddleware(view)(request)

    event = SecurityEvent.objects.get()
    assert event.ip_address == "203.0.113.7"
    assert event.user_agent == "probe/1.0"
    assert event.request_id == response["X-Request-ID"]
    assert event.success is False
    assert event.metadata == {"reason": "bad_password"}


@pytest.mark.django_db
def test_emit_strips_nul_bytes_postgresql_would_refuse() -> None:
    event_id = emit(EventType.LOGIN_FAILED, user_id="a\x00b", metadata={"reason": "nul"})
    assert SecurityEvent.objects.get(id=event_id).user_id == "ab"


@pytest.mark.django_db(transaction=True)
def test_a_refused_event_raises_a_django_error_and_the_connection_stays_usable(
    settings,
) -> None:
    # The row goes through psycopg directly; its errors must still be Django's (callers catch
    # django.db.Error) and must not leave the connection unusable for the next event.
    settings.AUDIT_JOURNAL = False  # a synchronous INSERT (the journal's refusals: test_journal)
    with pytest.raises(DataError):
        emit(EventType.LOGOUT, resource_type="x" * 65)  # the column holds 64
    event_id = emit(EventType.LOGOUT, resource_type="ok")
    assert SecurityEvent.objects.filter(id=event_id).exists()


def test_every_event_type_has_one_rule() -> None:
    # Severity and compliance tags come from one table, never from the emitting code.
    assert set(RULES) == set(EventType)
    for rule in RULES.values():
        assert rule.tags
        assert set(rule.tags) <= {"SOC2", "GDPR"}


@pytest.mark.django_db
def test_one_failed_sign_in_is_low_and_tagged_from_the_rule_table() -> None:
    # Issue 10: one failure is routine; bursts are for rate limits and threat rules.
    event_id = emit(
        EventType.LOGIN_FAILED, success=False, error_code="wrong_credentials",
        error_message="The email address or password is wrong.",
    )  # fmt: skip
    event = SecurityEvent.objects.get(id=event_id)
    assert event.severity == "low"
    assert event.compliance_tags == ["SOC2"]
    assert event.action == "failed"
    assert (event.error_code, event.success) == ("wrong_credentials", False)


@pytest.mark.django_db
def test_an_event_in_a_request_carries_its_duration_and_request_id() -> None:
    recorded: list[uuid.UUID] = []

    def view(request: HttpRequest) -> HttpResponse:
        recorded.append(emit(EventType.LOGOUT, user_id="u", action="logout"))
        return HttpResponse()

    response = RequestContextMiddleware(view)(RequestFactory().get("/"))
    event = SecurityEvent.objects.get(id=recorded[0])
    assert event.request_id == response["X-Request-ID"]
    assert event.duration_ms is not None
    assert 0 <= event.duration_ms < 5000
    assert event.action == "logout"
    assert event.severity == "low"


def test_a_change_to_who_may_do_what_is_evidence_for_soc2_and_gdpr() -> None:
    # Issue 13: operator changes to memberships and roles are access-control changes (SOC2
    # CC6.2/CC6.3) and processing of the person's data (GDPR Art. 30).
    assert RULES[EventType.PERMISSION_CHANGED].tags == ("SOC2", "GDPR")
