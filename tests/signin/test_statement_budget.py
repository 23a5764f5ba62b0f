"""SQL statements of the sign-in POST (issue 11: a whole password sign-in at ≥ 0.8 times the rate of
the password hash alone). Counts, not times: each statement is a database round trip the
person waits for. Run without the test's wrapping transaction (transaction=True), as
production runs: the login.succeeded event, recorded outside a transaction, goes to the audit
journal, not to an INSERT."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apps.sessions.models import LoginSession
from apps.threat.ruleset import ruleset_current
from apps.tokens.services import client_create
from tests.rp import PASSWORD, REDIRECT_URI
from tests.tokens.conftest import authorize_params, new_pkce
from tests.tokens.test_statement_budgets import _show, caches_caught_up, statements

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_POST_BUDGET = 5  # 8 before apps/signin (django_session exists + insert + update, the
# user read twice, last_login on its own)
CODE_BUDGET = 3  # 4 before: the session's user was read on its own


def test_password_sign_in_runs_at_most_its_budget(person) -> None:
    # Its parts: the account read (identify), the user row's lock that serializes one
    # person's logins (it writes last_login too), the live sessions counted for the limit,
    # the login session inserted, the browser session inserted under a new key.
    # first-party (--skip-consent): authorize answers with the code at once
    rp, _ = client_create(name="First party", redirect_uris=[REDIRECT_URI], skip_consent=True)
    caches_caught_up()
    ruleset_current()  # the threat rules, loaded once per process, as after any sign-in
    browser = HttpClient(enforce_csrf_checks=True)
    to_login = browser.get("/oauth/authorize", authorize_params(rp.client_id, new_pkce()))
    assert to_login.status_code == 302, to_login.content
    page = browser.get(to_login["Location"])
    next_url = parse_qs(urlsplit(to_login["Location"]).query)["next"][0]
    form = {
        "csrfmiddlewaretoken": page.context["csrf_token"],
        "email": person.email,
        "password": PASSWORD,
        "next": next_url,
    }
    with statements() as sql:
        response = browser.post(to_login["Location"], form)
    assert response.status_code == 302, response.content
    assert response["Location"] == next_url
    assert LoginSession.objects.filter(user=person).count() == 1
    assert len(sql) <= LOGIN_POST_BUDGET, _show(sql)
    # Back at authorize: the browser session, the login session with its user, the code.
    with statements() as sql:
        code = browser.get(next_url)
    assert code.status_code == 302
    assert "code" in parse_qs(urlsplit(code["Location"]).query)
    assert len(sql) <= CODE_BUDGET, _show(sql)


def test_identify_is_an_index_lookup(person) -> None:
    # One statement is cheap only if it does not read every account: the sign-in's lookup
    # (the manager's get_by_natural_key) must be answerable from the unique index on
    # lower(email). email__iexact (UPPER(email) = UPPER(...)) was not.
    from django.db import connection, transaction

    from apps.accounts.models import User

    with CaptureQueriesContext(connection) as captured:
        assert User._default_manager.get_by_natural_key("ADA@example.COM") == person
    [lookup] = [q["sql"] for q in captured.captured_queries]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # as the planner does on many rows
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "accounts_user_email_ci_uniq" in plan, plan
