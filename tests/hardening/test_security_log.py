"""A request Django finds suspicious (SuspiciousOperation: a Host header not ours, a form
with too many fields, a body over DATA_UPLOAD_MAX_MEMORY_SIZE) is a client's error: one
WARNING line with the request id, never ERROR with a traceback, which any anonymous client
could use to flood the log (issue 20)."""

from __future__ import annotations

import logging

import pytest
from django.test import Client as HttpClient

from tests.tokens.conftest import TOKEN

FORM = "application/x-www-form-urlencoded"


def _security_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("django.security")]


def _assert_one_warning_line(caplog: pytest.LogCaptureFixture, answer, logger: str) -> None:
    [line] = _security_lines(caplog)
    assert line.name == logger
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    assert line.request_id == answer["X-Request-ID"]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.django_db
def test_a_host_header_not_ours_is_one_warning_line(caplog) -> None:
    with caplog.at_level(logging.INFO):
        answer = HttpClient().get("/login", HTTP_HOST="attacker.example")

    assert answer.status_code == 400
    _assert_one_warning_line(caplog, answer, "django.security.DisallowedHost")


@pytest.mark.django_db
def test_a_form_with_too_many_fields_is_one_warning_line(caplog, settings) -> None:
    body = "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    with caplog.at_level(logging.INFO):
        answer = HttpClient().post(TOKEN, body, content_type=FORM)

    assert answer.status_code == 400
    _assert_one_warning_line(caplog, answer, "django.security.TooManyFieldsSent")


@pytest.mark.django_db
def test_a_body_over_the_upload_limit_is_a_413_and_one_warning_line(caplog, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000  # under IDP_MAX_REQUEST_BODY_BYTES
    with caplog.at_level(logging.INFO):
        answer = HttpClient().post(TOKEN, "a=" + "x" * 20_000, content_type=FORM)

    assert answer.status_code == 413
    assert answer.json()["request_id"] == answer["X-Request-ID"]
    _assert_one_warning_line(caplog, answer, "django.security.RequestDataTooBig")


@pytest.mark.django_db
def test_a_body_over_the_request_limit_is_refused_without_a_security_line(caplog, settings):
    """apps/core/request_limits.py refuses it before anything reads it: the access-log line
    is the only one."""
    with caplog.at_level(logging.INFO):
        answer = HttpClient().post(
            "/login", "x", content_type=FORM, CONTENT_LENGTH=settings.MAX_REQUEST_BODY_BYTES + 1
        )

    assert answer.status_code == 413
    assert _security_lines(caplog) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.django_db
def test_a_csrf_failure_is_one_warning_line(caplog) -> None:
    with caplog.at_level(logging.INFO):
        answer = HttpClient(enforce_csrf_checks=True).post("/login", {"email": "a@example.com"})

    assert answer.status_code == 403
    _assert_one_warning_line(caplog, answer, "django.security.csrf")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # no boundary
        "multipart/form-data; boundary=" + "z" * 300,  # a boundary longer than RFC 2046 allows
        f"{FORM}; charset=utf-7",  # a charset Python cannot decode forms in
    ],
)
def test_a_malformed_body_is_a_400_without_an_error_line(caplog, content_type) -> None:
    with caplog.at_level(logging.INFO):
        answer = HttpClient().generic("POST", TOKEN, b"--z\r\nbroken", content_type=content_type)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
