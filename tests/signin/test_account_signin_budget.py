"""What the new-device steps (apps/signin/pipeline.py recognize_device, notify_new_device)
cost a sign-in, in SQL statements: one (has this browser opened a session of this account
before?) on a proven sign-in of an account that signed in before; none on a failure."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from tests.rp import PASSWORD
from tests.signin.test_statement_budget import LOGIN_POST_BUDGET
from tests.tokens.test_statement_budgets import _show, statements

pytestmark = pytest.mark.django_db(transaction=True)


def _form(browser: HttpClient, email: str, password: str) -> dict[str, str]:
    page = browser.get("/login")  # the CSRF token and the device cookie
    return {"csrfmiddlewaretoken": page.context["csrf_token"], "email": email, "password": password}


def test_a_returning_sign_in_costs_one_statement_more(person) -> None:
    first = HttpClient(enforce_csrf_checks=True)
    assert first.post("/login", _form(first, person.email, PASSWORD)).status_code == 302
    again = HttpClient(enforce_csrf_checks=True)
    form = _form(again, person.email, PASSWORD)

    with statements() as sql:
        assert again.post("/login", form).status_code == 302

    assert len(sql) == LOGIN_POST_BUDGET + 1, _show(sql)
    assert any('"device_id"' in s for s in sql), _show(sql)  # the question was asked


def test_a_wrong_password_asks_nothing_of_devices(person) -> None:
    first = HttpClient(enforce_csrf_checks=True)
    assert first.post("/login", _form(first, person.email, PASSWORD)).status_code == 302
    other = HttpClient(enforce_csrf_checks=True)
    form = _form(other, person.email, "wrong guess")

    with statements() as sql:
        assert other.post("/login", form).status_code == 400

    assert not any('"device_id"' in s for s in sql), _show(sql)
