"""A failed CSRF check answers with our error page (settings.CSRF_FAILURE_VIEW), not Django's
unbranded one: the request id to quote, and what to do: reload the page (issue 20)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.core.views import CSRF_FAILED


@pytest.mark.django_db
def test_a_form_posted_without_its_token_gets_our_page() -> None:
    browser = HttpClient(enforce_csrf_checks=True)

    answer = browser.post("/login", {"email": "ada@example.com"}, HTTP_ACCEPT="text/html")

    assert answer.status_code == 403
    assert answer["Content-Type"].startswith("text/html")
    page = answer.content.decode()
    assert "Reload the page" in page
    assert answer["X-Request-ID"] in page
    assert "Tessera" in page
    assert "CSRF verification failed" not in page  # Django's own page


@pytest.mark.django_db
def test_a_script_gets_the_same_as_json() -> None:
    script = HttpClient(enforce_csrf_checks=True)

    answer = script.post("/login", {"email": "ada@example.com"}, HTTP_ACCEPT="application/json")

    assert answer.status_code == 403
    assert answer["Cache-Control"] == "no-store"
    assert answer.json() == {
        "error": "forbidden",
        "error_description": CSRF_FAILED,
        "request_id": answer["X-Request-ID"],
    }
