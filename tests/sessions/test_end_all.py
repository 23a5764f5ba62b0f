"""Ending every session of every person at once (OWASP ASVS 7.4.5: "an administrator can
terminate active sessions for an individual user or for all users"): the admin API, the
console page and `manage.py end_all_sessions`, each through sessions_end_everyone, which runs
every session through session_end (apps/sessions/services.py)."""

from __future__ import annotations

import functools
import io
import uuid
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.sessions.models import LoginSession
from apps.sessions.services import sessions_end_everyone
from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from tests.console.conftest import (
    access_token,
    add_session,
    bearer,
    csrf_token,
    operator,  # noqa: F401 - a fixture
    signed_in_as,
    staff,  # noqa: F401 - a fixture
)
from tests.rp import PASSWORD, RegisteredClient
from tests.tokens.conftest import (
    SCOPE,
    USERINFO,
    Flow,
    register,  # noqa: F401 - a fixture
    signed_in,  # noqa: F401 - a fixture
)
from tests.tokens.test_backchannel_logout import (
    LogoutReceiver,
    receiver,  # noqa: F401 - a fixture
    verified_logout_token,
    worker_keys,  # noqa: F401 - a fixture
)

END_ALL_API = "/api/v1/sessions/revoke-all"
END_ALL_PAGE = "/console/sessions/end-all/"


def live() -> set[uuid.UUID]:
    return set(LoginSession.objects.filter(ended_at__isnull=True).values_list("pk", flat=True))


def sid_listed(redis_client, session_id: object) -> bool:
    return bool(redis_client.exists(f"tessera:revoked:sid:{session_id}"))


def ended_all_events() -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type="sessions.ended_all"))


@pytest.fixture
def ada_tokens(signed_in: HttpClient, rp: RegisteredClient, person) -> dict[str, str]:  # noqa: F811
    """Ada signed in, and a relying party holds an access and a refresh token of her session."""
    consent_grant(
        user_id=person.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    tokens: dict[str, str] = Flow(signed_in, rp).tokens()
    assert tokens["refresh_token"]
    return tokens


def test_api_ends_every_session_of_every_person_but_the_callers(
    operator,  # noqa: F811
    person,
    rp: RegisteredClient,
    ada_tokens: dict[str, str],
    redis_client,
) -> None:
    bob = user_create(email="bob@example.com", password=PASSWORD)
    bobs = [add_session(bob), add_session(bob)]
    token = access_token(operator, "openid admin")
    [own] = LoginSession.objects.filter(user=operator, ended_at__isnull=True)
    [adas] = LoginSession.objects.filter(user=person)
    http = HttpClient()

    answer = http.post(END_ALL_API, headers=bearer(token))

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"ended": 3, "remaining": 0, "kept": str(own.pk)}
    assert live() == {own.pk}
    for session in [adas, *bobs]:
        assert sid_listed(redis_client, session.pk)  # JWT access tokens under it die
    assert not sid_listed(redis_client, own.pk)
    # Ada's relying party: its access token and its refresh token stop working.
    assert http.get(USERINFO, headers=bearer(ada_tokens["access_token"])).status_code == 401
    refreshed = Flow(HttpClient(), rp).refresh(ada_tokens["refresh_token"])
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")
    # The caller's own token goes on working.
    assert http.get("/api/v1/sessions", headers=bearer(token)).status_code == 200
    revoked = SecurityEvent.objects.filter(event_type="session.revoked", actor_id=str(operator.pk))
    assert {event.session_id for event in revoked} == {str(adas.pk), *(str(s.pk) for s in bobs)}
    assert {event.metadata["reason"] for event in revoked} == {"api"}
    [summary] = ended_all_events()
    assert summary.actor_id == str(operator.pk)
    assert (summary.metadata["ended"], summary.metadata["kept"]) == (3, str(own.pk))
    assert summary.severity == "high"


def test_api_refuses_a_viewer_and_ends_nothing(person) -> None:
    add_session(person)
    viewer = signed_in_as("viewer", enforce_csrf_checks=False)
    before = live()

    answer = viewer.post(END_ALL_API)

    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("This needs the operator role")
    assert live() == before
    assert ended_all_events() == []


def test_console_says_how_many_will_end_and_needs_the_typed_phrase(
    staff: HttpClient,  # noqa: F811
    operator,  # noqa: F811
    person,
) -> None:
    for _ in range(3):
        add_session(person)
    [own] = LoginSession.objects.filter(user=operator, ended_at__isnull=True)
    listing = staff.get("/console/sessions/")
    assert END_ALL_PAGE in listing.content.decode()

    page = staff.get(END_ALL_PAGE)
    assert page.status_code == 200
    assert "3 sessions will end." in page.content.decode()
    assert "Your own session" in page.content.decode()

    token = csrf_token(page.content)
    wrong = staff.post(END_ALL_PAGE, {"csrfmiddlewaretoken": token, "confirmation": "yes"})
    assert wrong.status_code == 400
    assert "nothing was ended" in wrong.content.decode()
    assert len(live()) == 4
    assert ended_all_events() == []

    key_before = staff.cookies["sessionid"].value
    done = staff.post(
        END_ALL_PAGE, {"csrfmiddlewaretoken": token, "confirmation": "End all sessions"}
    )

    assert done.status_code == 302
    assert done["Location"] == "/console/sessions/"
    assert live() == {own.pk}
    # The operator goes on, signed in under a browser session key the store never held.
    assert staff.cookies["sessionid"].value != key_before
    followed = staff.get("/console/sessions/")
    assert followed.status_code == 200
    assert "3 sessions ended. Yours was kept" in followed.content.decode()
    [summary] = ended_all_events()
    assert (summary.actor_id, summary.metadata["ended"]) == (str(operator.pk), 3)


def test_console_page_is_refused_to_a_viewer(person) -> None:
    add_session(person)
    viewer = signed_in_as("viewer", enforce_csrf_checks=False)

    answer = viewer.post(END_ALL_PAGE, {"confirmation": "end all sessions"})

    assert answer.status_code == 403
    assert len(live()) == 2  # Ada's and the viewer's


def test_command_ends_every_session_in_batches_and_shows_progress(operator, person) -> None:  # noqa: F811
    sessions = [add_session(person) for _ in range(5)]
    out = io.StringIO()

    call_command(
        "end_all_sessions", "--yes", "--batch-size", "2", "--operator", operator.email, stdout=out
    )

    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines[:3]] == [
        "ended 2 of 5",
        "ended 4 of 5",
        "ended 5 of 5",
    ]
    assert lines[3].startswith("ended=5 seconds=")
    assert live() == set()  # the command keeps no one's session
    revoked = SecurityEvent.objects.filter(event_type="session.revoked", actor_id=str(operator.pk))
    assert {event.session_id for event in revoked} == {str(s.pk) for s in sessions}
    [summary] = ended_all_events()
    assert summary.actor_id == str(operator.pk)
    assert summary.metadata["via"] == "manage.py end_all_sessions"
    assert summary.metadata["os_user"]
    assert (summary.metadata["ended"], summary.metadata["kept"]) == (5, None)


def test_command_off_a_terminal_without_yes_ends_nothing(person) -> None:
    add_session(person)

    with pytest.raises(CommandError, match="pass --yes"):
        call_command("end_all_sessions", stdout=io.StringIO())

    assert len(live()) == 1


def test_command_names_only_an_operator_as_the_actor(person) -> None:
    add_session(person)

    with pytest.raises(CommandError, match="not an active staff member with the operator role"):
        call_command("end_all_sessions", "--yes", "--operator", person.email)

    assert len(live()) == 1


def test_sessions_begun_during_the_run_are_left_alone(person) -> None:
    # People sign in again while the run goes on: those sessions began after the incident
    # response and are not ended, and the run finishes however fast they come.
    before = [add_session(person) for _ in range(3)]
    during: list[LoginSession] = []
    totals: list[int] = []

    def progress(ended: int) -> None:
        totals.append(ended)
        during.append(add_session(person))

    run = sessions_end_everyone(reason="operator", batch_size=1, progress=progress)

    assert (run.ended, run.remaining) == (3, 0)
    assert totals == [1, 2, 3]
    assert live() == {session.pk for session in during}
    assert not any(LoginSession.objects.get(pk=s.pk).ended_at is None for s in before)


@pytest.mark.django_db(transaction=True)
def test_relying_parties_are_told_over_the_back_channel(
    signed_in: HttpClient,  # noqa: F811
    person,
    register: Callable[..., RegisteredClient],  # noqa: F811
    receiver: Callable[..., LogoutReceiver],  # noqa: F811
    worker_keys: None,  # noqa: F811
) -> None:
    # OpenID Connect Back-Channel Logout 1.0 §2.5, by the real Celery worker
    endpoint = receiver(200)
    rp = register(backchannel_logout_uri=endpoint.url)
    consent_grant(
        user_id=person.pk, client=Client.objects.get(client_id=rp.client_id), scopes=SCOPE.split()
    )
    Flow(signed_in, rp).tokens()
    [session] = LoginSession.objects.filter(user=person)

    call_command("end_all_sessions", "--yes", stdout=io.StringIO())

    post = endpoint.next_post()
    claims = verified_logout_token(signed_in, post.logout_token, rp.client_id)
    assert claims["sid"] == str(session.pk)
    assert claims["sub"] == str(person.pk)


def test_a_request_stops_after_its_time_and_says_how_many_are_left(person) -> None:
    # One request of the console or the API works END_EVERYONE_REQUEST_SECONDS at most (a
    # proxy's read timeout would otherwise answer 504 with no count); the next goes on.
    sessions = [add_session(person) for _ in range(3)]

    first = sessions_end_everyone(reason="operator", batch_size=1, seconds=0)
    second = sessions_end_everyone(reason="operator", batch_size=2, seconds=0)

    assert (first.ended, first.remaining) == (1, 2)
    assert (second.ended, second.remaining) == (2, 0)
    assert live() == set()
    runs = sorted((e.metadata["ended"], e.metadata["remaining"]) for e in ended_all_events())
    assert runs == [(1, 2), (2, 0)]
    assert {s.pk for s in sessions} == set(
        LoginSession.objects.filter(ended_at__isnull=False).values_list("pk", flat=True)
    )


def test_console_cut_short_says_what_is_left_and_confirming_again_ends_it(
    staff: HttpClient,  # noqa: F811
    operator,  # noqa: F811
    person,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from apps.console import sessions_all

    monkeypatch.setattr(sessions_all, "END_EVERYONE_REQUEST_SECONDS", 0)
    one_at_a_time = functools.partial(sessions_all.sessions_end_everyone, batch_size=1)
    monkeypatch.setattr(sessions_all, "sessions_end_everyone", one_at_a_time)
    for _ in range(2):
        add_session(person)
    [own] = LoginSession.objects.filter(user=operator, ended_at__isnull=True)
    confirm = {"confirmation": "end all sessions"}
    token = csrf_token(staff.get(END_ALL_PAGE).content)

    cut = staff.post(END_ALL_PAGE, {"csrfmiddlewaretoken": token, **confirm})

    assert (cut.status_code, cut["Location"]) == (302, END_ALL_PAGE)
    page = staff.get(END_ALL_PAGE)
    assert "1 session ended; 1 still live" in page.content.decode()
    assert "Confirm again to end the rest." in page.content.decode()
    assert "1 session will end." in page.content.decode()
    done = staff.post(END_ALL_PAGE, {"csrfmiddlewaretoken": csrf_token(page.content), **confirm})
    assert (done.status_code, done["Location"]) == (302, "/console/sessions/")
    assert live() == {own.pk}
