"""A JSON body nested deeper than Python's parser follows (100,000 `[`) is a 400 naming the
problem on every endpoint that takes JSON, never a 500 (issue 20).

DRF parses the body the first time anything reads it, the session's CSRF check included, so
the admin API's endpoints that read no body at all (erase, revoke) met it too."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.threat.replay import BadLine, parse
from tests.console.conftest import csrf_token

DEEP = "[" * 100_000


def _operator_token(staff: HttpClient, person) -> str:
    """The CSRF token the console's own erase page carries, as a browser would have it."""
    page = staff.get(f"/console/users/{person.pk}/erase/")
    assert page.status_code == 200
    return csrf_token(page.content)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/{id}/erase",
        "/api/v1/users/{id}/sessions/revoke",
        "/api/v1/lockouts/unlock",  # an endpoint that reads request.data
    ],
)
def test_deeply_nested_json_from_a_signed_in_operator_is_a_400(staff, person, path) -> None:
    token = _operator_token(staff, person)
    staff.raise_request_exception = False  # a 500 is an answer to assert on, not a raise

    answer = staff.post(
        path.format(id=person.pk), DEEP, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    assert answer.status_code == 400
    assert answer.json() == {"detail": "JSON parse error - the body is nested too deeply."}
    person.refresh_from_db()
    assert person.is_active  # nothing was erased


def test_the_operator_token_still_works_with_a_plain_body(staff, person) -> None:
    """The parser refuses only what is malformed: the same request with `{}` goes through."""
    token = _operator_token(staff, person)

    answer = staff.post(
        f"/api/v1/users/{person.pk}/sessions/revoke",
        "{}",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )

    assert answer.status_code == 200
    assert answer.json() == {"ended": 0}


@pytest.mark.django_db
def test_a_deeply_nested_csp_report_is_a_400() -> None:
    answer = HttpClient().post("/csp-report", DEEP[:16_000], content_type="application/csp-report")

    assert answer.status_code == 400


def test_a_deeply_nested_threat_replay_line_is_a_bad_line() -> None:
    with pytest.raises(BadLine, match="nested too deeply"):
        parse(DEEP[:16_000])
