"""Operators see the rate-limit keys refusing requests now (the Lockouts page, a person's page,
the admin API) and clear them, recorded as ratelimit.cleared with the operator as actor
(issue 12; OWASP ASVS 7.2.2). Keys are blocked by real requests through the real limiter
(evaluate.lua in the suite's Redis), with tight rules set for the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.ratelimit import services
from apps.ratelimit.rules import rules_reload
from apps.ratelimit.services import blocks_current
from apps.tokens.services import client_create
from tests.console.conftest import access_token, audited, bearer, confirm, csrf_token
from tests.ratelimit.conftest import basic, set_rule
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

ATTACKER_IP = "203.0.113.77"


@pytest.fixture(autouse=True)
def _rules_read_again() -> Iterator[None]:
    """set_rule changes settings for one test; the rules are read again once the settings
    fixture (set up after this one, so torn down before it) has put them back."""
    rules_reload()
    yield
    rules_reload()


def _refuse_sign_in(email: str, ip: str = ATTACKER_IP) -> HttpClient:
    """Wrong passwords through the hosted login page until a rate rule refuses (the tight
    rule the test set: 2 at once); the browser that typed them."""
    http = HttpClient(REMOTE_ADDR=ip)
    for _ in range(2):
        assert http.post("/login", {"email": email, "password": "wrong guess"}).status_code == 400
    assert http.post("/login", {"email": email, "password": PASSWORD}).status_code == 429
    return http


def _refuse_tokens(client_id: str, secret: str) -> None:
    """client_credentials grants (RFC 6749 §4.4) until the client's rule refuses: 2 at once.
    Not from loopback, which the suite allow-lists for unrelated tests."""
    for _ in range(2):
        assert _token(client_id, secret) == 200
    assert _token(client_id, secret) == 429


def _token(client_id: str, secret: str) -> int:
    return (
        HttpClient(REMOTE_ADDR=ATTACKER_IP)
        .post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(client_id, secret),
        )
        .status_code
    )


def _admin(operator: Any) -> dict[str, str]:
    return bearer(access_token(operator, "openid admin"))


# --- the person's page ----------------------------------------------------------------------


def test_persons_page_says_when_no_rate_limit_refuses(staff, person) -> None:
    page = staff.get(f"/console/users/{person.pk}/").content.decode()

    assert "Rate-limit blocks" in page
    assert "No rate limit refuses this address now." in page


def test_persons_page_shows_the_block_and_clear_lets_them_sign_in(
    settings, staff, operator, person
) -> None:
    set_rule(settings, "login.account", "2/1h")
    browser = _refuse_sign_in("Ada@Example.com")  # any case: one key

    page = staff.get(f"/console/users/{person.pk}/").content.decode()
    section = page[page.index("Rate-limit blocks") :]
    assert "<code>login.account</code>" in section
    assert "quota spent" in section
    assert "29 min" in section or "30 min" in section  # one request every 30 min

    done = confirm(staff, f"/console/users/{person.pk}/ratelimit/clear/")

    assert done.redirect_chain[-1][0] == f"/console/users/{person.pk}/"
    assert "ada@example.com: 1 rate-limit key cleared." in done.content.decode()
    assert "No rate limit refuses this address now." in done.content.decode()
    [event] = audited("ratelimit.cleared", operator)
    assert (event.resource_type, event.resource_id) == ("ratelimit", "login.account")
    assert event.metadata == {
        "reason": "operator",
        "rule": "login.account",
        "value": "ada@example.com",
        "cleared": True,
    }
    signed_in = browser.post("/login", {"email": person.email, "password": PASSWORD})
    assert signed_in.status_code == 302


def test_clearing_a_persons_blocks_asks_first_and_needs_the_csrf_token(
    settings, staff, person
) -> None:
    set_rule(settings, "login.account", "2/1h")
    _refuse_sign_in(person.email)
    path = f"/console/users/{person.pk}/ratelimit/clear/"

    asked = staff.get(path)
    refused = staff.post(path)

    assert asked.status_code == 200
    assert "Clear the rate limits of ada@example.com?" in asked.content.decode()
    assert refused.status_code == 403
    assert [b.rule for b in services.blocks_for(identifier=person.email)] == ["login.account"]


# --- the Lockouts page ----------------------------------------------------------------------


def test_lockouts_page_lists_blocks_and_links_to_people_and_clients(
    settings, staff, person
) -> None:
    set_rule(settings, "login.account", "2/1h")
    set_rule(settings, "token.client", "2/1h")
    set_rule(settings, "login.ip", "4/1m burst=4 backoff=linear base=600")
    job, secret = client_create(
        name="Nightly job", redirect_uris=[], grant_types=["client_credentials"]
    )
    _refuse_sign_in(person.email, ip="192.0.2.20")
    _refuse_sign_in("nobody@example.com", ip="192.0.2.21")
    _refuse_tokens(job.client_id, secret)
    hammer = HttpClient(REMOTE_ADDR="192.0.2.22")
    for n in range(5):  # login.ip: 4 at once, then a 600 s penalty
        hammer.post("/login", {"email": f"x{n}@example.com", "password": "guess"})

    response = staff.get("/console/lockouts/")

    page = response.content.decode()
    section = page[page.index("<h2>Rate-limit blocks</h2>") :]
    assert response.status_code == 200
    assert f'<a href="/console/users/{person.pk}/">ada@example.com</a>' in section
    assert "<code>nobody@example.com</code>" in section
    assert "no account" in section
    assert "Nightly job" in section
    assert "<code>192.0.2.22</code>" in section  # an IP: shown, linked to nothing
    assert "backoff penalty" in section
    assert section.count(">Clear</a>") == 4
    # the longest wait first: 30 min quota spent (three of them), then the 10 min penalty
    assert section.index("192.0.2.22") > section.index("Nightly job")


def test_clear_from_the_lockouts_page_lets_the_client_in(settings, staff, operator) -> None:
    set_rule(settings, "token.client", "2/1h")
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    _refuse_tokens(job.client_id, secret)

    done = confirm(staff, f"/console/ratelimit/clear/?rule=token.client&value={job.client_id}")

    assert done.redirect_chain[-1][0] == "/console/lockouts/"
    assert f"Rate limit token.client for {job.client_id} cleared." in done.content.decode()
    [event] = audited("ratelimit.cleared", operator)
    assert event.metadata["value"] == job.client_id
    assert _token(job.client_id, secret) == 200


def test_clear_asks_first_and_needs_the_csrf_token(settings, staff) -> None:
    set_rule(settings, "login.endpoint", "2/1h")
    _refuse_sign_in("someone@example.com")
    path = "/console/ratelimit/clear/?rule=login.endpoint&value="

    asked = staff.get(path)
    refused = staff.post(path)

    assert asked.status_code == 200
    assert "Clear the rate limit login.endpoint?" in asked.content.decode()
    assert refused.status_code == 403
    assert [b.rule for b in blocks_current().blocks] == ["login.endpoint"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "This field is required."),
        ("?rule=no.such.rule&value=x", "No rate-limit rule is named"),
        ("?rule=login.ip&value=not-an-ip", "Not an IP address or network."),
        ("?rule=global&value=x", "leave value empty"),
        ("?rule=login.account&value=", "is keyed by account"),
        ("?rule=login.account&value=" + "x" * 255, "at most 254 characters"),
        ("?rule=" + "r" * 65, "at most 64 characters"),
    ],
)
def test_clear_refuses_malformed_input(staff, query: str, message: str) -> None:
    response = staff.get("/console/ratelimit/clear/" + query)

    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/console/ratelimit/clear/?rule=global&value=",
        "/console/users/3f2a6c1e-0000-4000-8000-000000000001/ratelimit/clear/",
    ],
)
def test_only_staff_clear_blocks(client, outsider, path: str) -> None:
    assert client.get(path)["Location"].startswith("/login?next=/console/")
    assert outsider.get(path).status_code == 403
    token = csrf_token(outsider.get("/login").content)
    assert outsider.post(path, {"csrfmiddlewaretoken": token}).status_code == 403


# --- the service ----------------------------------------------------------------------------


def test_blocks_say_how_long_why_and_how_many_violations(settings, redis_client) -> None:
    set_rule(settings, "login.ip", "2/1m burst=2 backoff=exponential base=100 cap=1000")
    http = HttpClient(REMOTE_ADDR=ATTACKER_IP)
    statuses = [http.post("/login", {"email": "a@example.com", "password": "x"}).status_code]
    statuses += [http.post("/login", {"email": "a@example.com", "password": "x"}).status_code]
    assert statuses == [400, 400]
    assert http.post("/login", {"email": "a@example.com", "password": "x"}).status_code == 429
    redis_client.hset("tessera:rl:login.ip:" + ATTACKER_IP, "blk", 0)  # the penalty ran out
    assert http.post("/login", {"email": "a@example.com", "password": "x"}).status_code == 429

    [block] = blocks_current().blocks

    assert (block.rule, block.value, block.kind) == ("login.ip", ATTACKER_IP, "ip")
    assert block.penalty
    assert block.violations == 2
    assert 199 <= block.retry_after <= 200  # base x 2^(2-1), longer than the spent quota
    assert services.blocks_for(ips=[ATTACKER_IP]) == [block]
    assert services.blocks_for(identifier="a@example.com") == []


def test_blocks_leave_out_lockout_counters_keys_refusing_nothing_and_other_rules(
    settings, redis_client
) -> None:
    set_rule(settings, "login.account", "2/1h")
    _refuse_sign_in("ada@example.com")  # also counts failed attempts under tessera:rl:lock:
    HttpClient(REMOTE_ADDR="192.0.2.30").post("/login", {"email": "b@example.com", "password": "x"})
    redis_client.set("tessera:rl:login.account:not-a-hash", "1")  # WRONGTYPE for HMGET
    redis_client.hset("tessera:rl:retired.rule:x", mapping={"tat": 10**15})  # no such rule
    assert redis_client.keys("tessera:rl:lock:*")
    assert redis_client.keys("tessera:rl:lockips:*")

    every = blocks_current()

    assert [(b.rule, b.value) for b in every.blocks] == [("login.account", "ada@example.com")]
    assert blocks_current(rule="login.ip").blocks == []
    with pytest.raises(ValueError, match="No rate-limit rule"):
        blocks_current(rule="login.*")


def test_current_blocks_are_bounded_and_the_longest_first(settings) -> None:
    set_rule(settings, "login.account", "2/1h")
    for n in range(3):
        _refuse_sign_in(f"p{n}@example.com", ip=f"192.0.2.{40 + n}")
    set_rule(settings, "login.account", "2/1h backoff=linear base=7200")  # a longer wait
    _refuse_sign_in("late@example.com", ip="192.0.2.50")

    every = blocks_current()
    first = blocks_current(limit=2)

    assert every.blocks[0].value == "late@example.com"
    assert not every.truncated
    assert len(every.blocks) == 4
    assert len(first.blocks) == 2
    assert first.truncated


def test_an_ipv6_network_and_a_global_key_are_shown_as_clear_takes_them(settings) -> None:
    set_rule(settings, "login.ip", "2/1h")
    set_rule(settings, "global", "1000/1h burst=4")
    _refuse_sign_in("v6@example.com", ip="2001:db8:1:2::7")
    for n in range(10):  # new addresses until the global rule itself refuses one
        answer = HttpClient(REMOTE_ADDR=f"192.0.2.{60 + n}").post(
            "/login", {"email": "c@example.com", "password": ""}
        )
        if answer.status_code == 429:
            break
    assert answer.status_code == 429

    blocks = {block.rule: block for block in blocks_current().blocks}

    assert blocks["login.ip"].value == "2001:db8:1:2::/64"  # RATELIMIT_IPV6_PREFIX
    assert blocks["global"].value == ""
    assert blocks["global"].kind == ""
    same = services.block_key(rule="login.ip", value="2001:db8:1:2::99")  # an address in it
    assert same == services.block_key(rule="login.ip", value="2001:db8:1:2::/64")
    assert services.block_clear(rule="login.ip", value="2001:db8:1:2::/64", actor_id="x")
    assert services.block_clear(rule="global", value="", actor_id="x")
    assert not services.block_clear(rule="global", value="", actor_id="x")  # nothing left
    assert blocks_current().blocks == []


# --- the admin API --------------------------------------------------------------------------


def test_api_lists_blocks_and_clear_with_a_token_records_the_caller(settings, operator) -> None:
    set_rule(settings, "login.ip", "2/1m burst=2 backoff=linear base=600")
    browser = _refuse_sign_in("ada@example.com")
    admin = _admin(operator)

    listed = HttpClient().get("/api/v1/ratelimit/blocks", headers=admin)

    assert listed.status_code == 200
    body = listed.json()
    assert (body["truncated"], body["limit"]) == (False, 500)
    [row] = body["results"]
    assert row == {
        "rule": "login.ip",
        "kind": "ip",
        "value": ATTACKER_IP,
        "retry_after": row["retry_after"],
        "violations": 1,
        "penalty": True,
    }
    assert 595 <= row["retry_after"] <= 600
    only = HttpClient().get("/api/v1/ratelimit/blocks", {"rule": "token.ip"}, headers=admin)
    assert only.json()["results"] == []

    cleared = HttpClient(enforce_csrf_checks=True).post(
        "/api/v1/ratelimit/blocks/clear",
        {"rule": "login.ip", "value": ATTACKER_IP},
        content_type="application/json",
        headers=admin,
    )

    assert cleared.status_code == 200
    assert cleared.json() == {"cleared": True}
    [event] = audited("ratelimit.cleared", operator)
    assert event.metadata["reason"] == "api"
    assert browser.post("/login", {"email": "ada@example.com", "password": "x"}).status_code == 400


def test_api_clear_by_a_staff_session_needs_the_csrf_token(staff) -> None:
    body = {"rule": "global", "value": ""}

    refused = staff.post("/api/v1/ratelimit/blocks/clear", body, content_type="application/json")

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rule": "no.such.rule", "value": "x"}, "rule"),
        ({"rule": "login.*", "value": "x"}, "rule"),
        ({"rule": "r" * 65}, "rule"),
        ({"value": "192.0.2.1"}, "rule"),
        ({"rule": ["login.ip"], "value": "192.0.2.1"}, "rule"),
        ({"rule": None, "value": "192.0.2.1"}, "rule"),
        ({"rule": {"a": 1}}, "rule"),
        ({"rule": "login.ip", "value": "not-an-ip"}, "value"),
        ({"rule": "login.ip", "value": "192.0.2.1/33"}, "value"),
        ({"rule": "login.ip", "value": "192.0.2.0/24"}, "value"),
        ({"rule": "login.ip", "value": "2001:db8::/48"}, "value"),
        ({"rule": "login.ip"}, "value"),
        ({"rule": "login.account", "value": "   "}, "value"),
        ({"rule": "login.account", "value": "x" * 255}, "value"),
        ({"rule": "login.account", "value": ["a@example.com"]}, "value"),
        ({"rule": 7, "value": "x"}, "rule"),  # a number is no rule's name
        ({"rule": "global", "value": "x"}, "value"),
    ],
)
def test_api_clear_names_the_field_at_fault(operator, body, field: str) -> None:
    response = HttpClient().post(
        "/api/v1/ratelimit/blocks/clear",
        body,
        content_type="application/json",
        headers=_admin(operator),
    )

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("payload", ['{"rule": "global", ', "[1, 2]", '"global"', "null"])
def test_api_clear_refuses_a_body_that_is_not_an_object(operator, payload: str) -> None:
    response = HttpClient().post(
        "/api/v1/ratelimit/blocks/clear",
        payload,
        content_type="application/json",
        headers=_admin(operator),
    )

    assert response.status_code == 400


@pytest.mark.parametrize("rule", ["no.such.rule", "login.*", "r" * 65])
def test_api_list_names_the_field_at_fault(staff, rule: str) -> None:
    response = staff.get("/api/v1/ratelimit/blocks", {"rule": rule})

    assert response.status_code == 400
    assert list(response.json()) == ["rule"]


def test_api_blocks_need_credentials(client, outsider) -> None:
    assert client.get("/api/v1/ratelimit/blocks").status_code == 401
    assert client.post("/api/v1/ratelimit/blocks/clear").status_code == 401
    assert outsider.get("/api/v1/ratelimit/blocks").status_code == 403
    token = csrf_token(outsider.get("/login").content)
    refused = outsider.post(
        "/api/v1/ratelimit/blocks/clear",
        {"rule": "global", "value": ""},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert refused.status_code == 403


def test_schema_documents_the_blocks_endpoints(staff) -> None:
    schema = staff.get("/api/schema/", {"format": "json"}).json()

    listed = schema["paths"]["/api/v1/ratelimit/blocks"]["get"]
    cleared = schema["paths"]["/api/v1/ratelimit/blocks/clear"]["post"]
    assert [p["name"] for p in listed["parameters"]] == ["rule"]
    assert {"200", "400"} <= set(listed["responses"]) & set(cleared["responses"])
    body = schema["components"]["schemas"]["BlockClear"]
    assert set(body["properties"]) == {"rule", "value"}
    assert body["required"] == ["rule"]
