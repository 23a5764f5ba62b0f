"""A console page or admin API answer that shows an operator one person's data records one
operator.viewed_user event: who looked, at whom, where (GDPR Art. 30 record of processing;
SOC 2 CC6.1: access to personal data is logged)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client as HttpClient

from tests.console.conftest import access_token
from tests.events import recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def looking(staff: HttpClient) -> HttpClient:
    """The operator's browser past its first request (whose new network flags the
    force_login session: an event of its own)."""
    staff.get("/console/")
    return staff


def _the_view(events, operator, person, path: str) -> None:
    [event] = events
    assert (event.event_type, event.action, event.success) == (
        "operator.viewed_user", "viewed", True
    )  # fmt: skip
    assert (event.user_id, event.actor_id) == (str(person.pk), str(operator.pk))
    assert (event.resource_type, event.resource_id) == ("user", str(person.pk))
    assert event.metadata == {"path": path}
    assert (event.severity, event.compliance_tags) == ("low", ["SOC2", "GDPR"])


def test_opening_a_persons_console_page(looking, operator, person, person_session) -> None:
    path = f"/console/users/{person.pk}/"

    with recorded() as events:
        assert looking.get(path).status_code == 200

    _the_view(events, operator, person, path)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/{user}",
        "/api/v1/users/{user}/sessions",
        "/api/v1/users/{user}/events",
        "/api/v1/users?email=ada@example.com",
        "/api/v1/sessions/{session}",
    ],
)
def test_reading_a_person_through_the_api(
    looking, operator, person, person_session, path: str
) -> None:
    path = path.format(user=person.pk, session=person_session.pk)

    with recorded() as events:
        assert looking.get(path).status_code == 200

    _the_view(events, operator, person, path.partition("?")[0])


def test_a_bearer_token_caller_is_the_actor(operator, person) -> None:
    token = access_token(operator, "openid admin")
    path = f"/api/v1/users/{person.pk}"

    with recorded() as events:
        response = HttpClient().get(path, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    _the_view(events, operator, person, path)


def test_reads_about_no_one_record_nothing(looking, person_session) -> None:
    with recorded() as events:
        assert looking.get("/console/sessions/").status_code == 200
        assert looking.get("/api/v1/sessions").status_code == 200
        assert looking.get("/api/v1/users?email=nobody@example.com").status_code == 200
        assert looking.get(f"/api/v1/users/{uuid.uuid4()}").status_code == 404

    assert events == []
