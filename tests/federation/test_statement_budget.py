"""SQL statements of an upstream sign-in's callback for a linked person (counts, not times:
each is a round trip the person waits for). Run without the test's wrapping transaction, as
production runs (events recorded outside one go to the journal, not to an INSERT)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from apps.accounts.models import StaffRole
from apps.accounts.services import user_create
from apps.federation import selectors
from apps.federation.models import FederatedIdentity
from apps.federation.providers import provider_create
from apps.sessions.models import LoginSession
from apps.threat.ruleset import ruleset_current
from tests.accounts.factories import UserFactory
from tests.federation.standins import GoogleStandIn
from tests.tokens.test_statement_budgets import _show, caches_caught_up, statements

pytestmark = pytest.mark.django_db(transaction=True)

# The identity with its account, its last-used UPDATE, the account read again with its MFA
# policy (identify's statement, by id), the device check of a returning person, then the
# password sign-in's own session steps: the user row's lock (last_login), the live sessions
# counted for the limit, the login session and the browser session inserted. A first
# password sign-in runs 5 (tests/signin/test_statement_budget.py): the identity's read and
# its UPDATE add two, the returning person's device check one.
CALLBACK_BUDGET = 8


def test_a_linked_persons_callback_runs_at_most_its_budget(
    google_standin: GoogleStandIn,
) -> None:
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    provider = provider_create(
        actor_id=admin.pk,
        slug="google",
        name="Google",
        kind="google",
        issuer=google_standin.url,
        client_id=google_standin.client_id,
        client_secret=google_standin.client_secret,
    )
    person = user_create(email="pat@example.com", email_verified=True)
    person.last_login = timezone.now()  # a returning person: the device check runs
    person.save(update_fields=["last_login"])
    FederatedIdentity.objects.create(
        user=person, provider=provider, subject=google_standin.user["sub"]
    )
    caches_caught_up()
    ruleset_current()  # the threat rules, loaded once per process
    selectors.providers_enabled()  # the enabled providers, once per process and change
    browser = HttpClient()
    start = browser.get("/login/federated/google", {"next": "/account/"})
    params = google_standin.authorize(start["Location"])
    with statements() as sql:
        response = browser.get("/login/federated/google/callback", params)
    assert response.status_code == 302, response.content
    assert response["Location"] == "/account/"
    assert LoginSession.objects.filter(user=person, provider="google").count() == 1
    assert len(sql) <= CALLBACK_BUDGET, _show(sql)
