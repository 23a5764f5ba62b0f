"""The callback's checks, in order (apps/federation/flow.py), each refusing with a page, a
federation.failed event and no session — none of which needs the provider to answer: a
GitHub provider's authorization URL is built without a request, and its "server" here is a
closed loopback port, so a callback that passed every check would end at the code exchange
(`unavailable`), which these tests also use to tell a check that passed from one that refused.
"""

from __future__ import annotations

import json
import signal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from apps.accounts.models import StaffRole
from apps.federation.models import Provider
from apps.federation.providers import provider_create, provider_set_enabled
from apps.federation.state import COOKIE
from apps.ratelimit.rules import rules_reload
from apps.sessions.models import LoginSession
from tests.accounts.factories import UserFactory
from tests.events import recorded
from tests.servers import Redis, free_port
from tests.tokens.conftest import Flow

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there: a connection is refused at once


def _provider(port: int, slug: str = "gh", **fields: Any) -> Provider:
    admin = UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)
    values: dict[str, Any] = {
        "slug": slug,
        "name": "GitHub",
        "kind": "github",
        "issuer": f"http://127.0.0.1:{port}",
        "client_id": "tessera-client",
        "client_secret": "upstream-secret",
    } | fields
    return provider_create(actor_id=admin.pk, **values)


@pytest.fixture
def github(closed_port: int) -> Provider:
    return _provider(closed_port)


def _start(http: HttpClient, slug: str = "gh", next_url: str = "/account/") -> dict[str, str]:
    response = http.get(f"/login/federated/{slug}", {"next": next_url})
    assert response.status_code == 302, response.content
    query = parse_qs(urlsplit(response["Location"]).query)
    return {name: values[0] for name, values in query.items()}


def _callback(http: HttpClient, slug: str = "gh", **params: str) -> Any:
    return http.get(f"/login/federated/{slug}/callback", params)


def _failed(events: list[Any]) -> list[str]:
    return [e.error_code for e in events if e.event_type == "federation.failed"]


def test_start_sends_the_browser_to_the_provider_with_state_and_pkce(
    client: HttpClient, github: Provider
) -> None:
    response = client.get("/login/federated/gh", {"next": "/account/"})
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{github.issuer}/login/oauth/authorize"
    )
    query = parse_qs(location.query)
    # RFC 7636 §4.3: S256 always; RFC 9700 §4.4.2: this provider's own redirect URI.
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"{settings.ISSUER}/login/federated/gh/callback"]
    assert query["client_id"] == ["tessera-client"]
    assert len(query["state"][0]) >= 43  # 256 bits
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/login/federated/"


def test_a_state_is_taken_once(client: HttpClient, github: Provider) -> None:
    # RFC 6749 §10.12: the first callback gets past every check (to the code exchange, which
    # the closed port refuses); the same callback again finds no state.
    sent = _start(client)
    with recorded() as events:
        first = _callback(client, state=sent["state"], code="c0de")
        again = _callback(client, state=sent["state"], code="c0de")
    assert first.status_code == 502
    assert again.status_code == 400
    assert "expired or was used already" in again.content.decode()
    assert _failed(events) == ["unavailable", "state"]
    assert not LoginSession.objects.exists()


@pytest.mark.parametrize(
    "state",
    ["", "forged-state", "x" * 1_000, "\x00\x01", "ünïcødé"],
    ids=["missing", "forged", "oversized", "control", "unicode"],
)
def test_a_forged_or_malformed_state_is_refused(
    client: HttpClient, github: Provider, state: str
) -> None:
    _start(client)
    with recorded() as events:
        response = _callback(client, state=state, code="c0de")
    assert response.status_code == 400
    # A NUL is refused before any view (apps/core/request_limits.py); the rest by the check.
    assert _failed(events) == ([] if "\x00" in state else ["state"])


def test_a_state_from_another_browser_is_refused_and_spent(
    client: HttpClient, github: Provider
) -> None:
    # Login CSRF: a victim's browser made to finish the attacker's sign-in has no binding cookie.
    sent = _start(client)
    victim = HttpClient()
    with recorded() as events:
        response = _callback(victim, state=sent["state"], code="c0de")
        own = _callback(client, state=sent["state"], code="c0de")
    assert response.status_code == 400
    assert "started in another browser" in response.content.decode()
    assert own.status_code == 400  # taken by the attempt: not usable afterwards either
    assert _failed(events) == ["browser", "state"]


def test_a_state_brought_to_another_providers_callback_is_refused(
    client: HttpClient, github: Provider, closed_port: int
) -> None:
    # RFC 9700 §4.4 mix-up: the answer for one provider at another's redirect URI.
    _provider(closed_port, slug="other", name="Other")
    sent = _start(client, "gh")
    with recorded() as events:
        response = _callback(client, "other", state=sent["state"], code="c0de")
    assert response.status_code == 400
    assert _failed(events) == ["provider_mismatch"]


def test_an_expired_state_is_refused(client: HttpClient, github: Provider, redis_client) -> None:
    sent = _start(client)
    [key] = redis_client.keys("tessera:fed:state:*")
    record = json.loads(redis_client.get(key))
    record["started"] -= settings.FEDERATION_STATE_SECONDS + 1
    redis_client.set(key, json.dumps(record), keepttl=True)
    with recorded() as events:
        response = _callback(client, state=sent["state"], code="c0de")
    assert response.status_code == 400
    assert _failed(events) == ["state"]
    assert not redis_client.exists(key)  # taken, though refused


def test_the_state_lives_in_redis_with_its_ttl(
    client: HttpClient, github: Provider, redis_client
) -> None:
    _start(client)
    [key] = redis_client.keys("tessera:fed:state:*")
    assert 0 < redis_client.ttl(key) <= settings.FEDERATION_STATE_SECONDS


def test_a_provider_disabled_meanwhile_is_refused(client: HttpClient, github: Provider) -> None:
    sent = _start(client)
    provider_set_enabled(provider=github, enabled=False, actor_id=None)
    with recorded() as events:
        response = _callback(client, state=sent["state"], code="c0de")
    assert response.status_code == 400
    assert _failed(events) == ["provider_disabled"]


def test_an_iss_that_is_not_the_providers_is_refused(client: HttpClient, github: Provider) -> None:
    # RFC 9207 §2.4: the authorization response names another issuer.
    sent = _start(client)
    with recorded() as events:
        response = _callback(client, state=sent["state"], code="c0de", iss="https://evil.example")
    assert response.status_code == 400
    assert _failed(events) == ["issuer_mismatch"]


def test_the_providers_error_is_shown_without_reflecting_it(
    client: HttpClient, github: Provider
) -> None:
    sent = _start(client)
    with recorded() as events:
        denied = _callback(client, state=sent["state"], error="access_denied")
    assert denied.status_code == 400
    assert "You did not allow the sign-in at GitHub" in denied.content.decode()
    sent = _start(client)
    hostile = '<script>alert("x")</script>'
    response = _callback(client, state=sent["state"], error=hostile, error_description=hostile)
    page = response.content.decode()
    assert response.status_code == 400
    assert "<script>" not in page
    assert "&lt;script" not in page
    assert "GitHub refused the sign-in (error)" in page
    assert _failed(events) == ["upstream_error"]


def test_a_callback_without_a_code_is_refused(client: HttpClient, github: Provider) -> None:
    sent = _start(client)
    with recorded() as events:
        response = _callback(client, state=sent["state"])
    assert response.status_code == 400
    assert "sent no sign-in code" in response.content.decode()
    assert _failed(events) == ["invalid_response"]


def test_an_unknown_provider_is_a_page_not_an_error(client: HttpClient, db: None) -> None:
    assert client.get("/login/federated/nobody").status_code == 404
    assert client.get("/login/federated/nobody/callback", {"state": "x"}).status_code == 400


def test_the_login_page_shows_one_button_per_enabled_provider(
    client: HttpClient, github: Provider, closed_port: int
) -> None:
    disabled = _provider(closed_port, slug="off", name="Switched Off")
    provider_set_enabled(provider=disabled, enabled=False, actor_id=None)
    page = client.get("/login", {"next": "/account/"}).content.decode()
    assert 'data-provider="gh"' in page
    assert "Sign in with GitHub" in page
    assert "/login/federated/gh?next=/account/" in page
    assert "Switched Off" not in page


def test_idp_hint_goes_straight_to_the_provider(client: HttpClient, github: Provider) -> None:
    response = client.get("/login", {"idp_hint": "gh", "next": "/account/"})
    assert response.status_code == 302
    assert response["Location"] == "/login/federated/gh?next=%2Faccount%2F"
    # A hint that names no enabled provider shows the page.
    assert client.get("/login", {"idp_hint": "nobody"}).status_code == 200


def test_a_login_hint_in_a_providers_domain_goes_to_it(
    client: HttpClient, closed_port: int
) -> None:
    _provider(closed_port, slug="corp", name="Corp", login_domains=["corp.example"])
    response = client.get("/login", {"login_hint": "Ada@CORP.example", "next": "/"})
    assert response.status_code == 302
    assert response["Location"].startswith("/login/federated/corp?")
    assert client.get("/login", {"login_hint": "ada@elsewhere.example"}).status_code == 200


@pytest.mark.parametrize("name", ["idp_hint", "kc_idp_hint"])
def test_authorize_passes_idp_hint_to_the_sign_in_page(
    client: HttpClient, rp, github: Provider, name: str
) -> None:
    response = Flow(client, rp).authorize(**{name: "gh"})
    location = urlsplit(response["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["idp_hint"] == ["gh"]
    onward = client.get(response["Location"])
    assert onward.status_code == 302
    assert urlsplit(onward["Location"]).path == "/login/federated/gh"
    assert parse_qs(urlsplit(onward["Location"]).query)["next"][0].startswith("/oauth/authorize?")


def test_callbacks_are_rate_limited_per_client_ip(
    client: HttpClient, github: Provider, settings: Any
) -> None:
    # A callback carries a credential (a code): limited like the sign-in form (OWASP ASVS
    # 4.0.3 2.2.1), whatever its state — a flood of forged callbacks meets the limit too.
    settings.RATELIMIT_ALLOW = ()
    rules_reload()
    try:
        statuses = [_callback(client, state=f"forged-{n}").status_code for n in range(40)]
    finally:
        rules_reload()
    assert statuses[0] == 400
    assert 429 in statuses
    refused = statuses.index(429)
    assert refused <= 31  # the burst and the rate of federation.ip, then refused
    assert set(statuses[refused:]) == {429}


@pytest.fixture
def own_redis(tmp_path: Any, settings: Any) -> Any:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_redis_down_is_a_page_at_the_start_and_at_the_callback(
    client: HttpClient, github: Provider, own_redis: Any
) -> None:
    # The flow's state lives in Redis only: without it nothing begins or finishes (fail
    # closed), and the person is told to try again, not shown a 500.
    sent = _start(client)
    own_redis.stop(signal.SIGKILL)
    with recorded() as events:
        start = client.get("/login/federated/gh", {"next": "/account/"})
        back = _callback(client, state=sent["state"], code="c0de")
    assert start.status_code == 503
    assert back.status_code == 503
    assert "Try again in a moment" in start.content.decode()
    assert _failed(events) == ["unavailable", "unavailable"]
    assert not LoginSession.objects.exists()
