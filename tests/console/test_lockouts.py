"""Operators see current lockouts (a person's page, the Lockouts page, the admin API) and lift
them, recorded as account.unlocked with the operator as actor (issue 12; OWASP ASVS 7.2.2)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from apps.ratelimit import services
from apps.ratelimit.services import lockouts_current
from apps.tokens.services import client_create
from tests.console.conftest import access_token, audited, bearer, confirm, csrf_token
from tests.ratelimit.conftest import basic
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

ATTACKER_IP = "203.0.113.9"


def _lock_sign_in(email: str, ip: str = ATTACKER_IP) -> HttpClient:
    """Wrong passwords through the hosted login page until the (address, IP) counter locks
    (LOCKOUT_IP_THRESHOLD, 5 by default); the browser that typed them."""
    http = HttpClient(REMOTE_ADDR=ip)
    for _ in range(5):
        assert http.post("/login", {"email": email, "password": "wrong guess"}).status_code == 400
    assert http.post("/login", {"email": email, "password": PASSWORD}).status_code == 429
    return http


def _lock_client(rf, client_id: str, ip: str = ATTACKER_IP) -> None:
    for _ in range(5):
        attempt = services.attempt_begin(
            rf.post("/oauth/token", REMOTE_ADDR=ip), kind="client", identifier=client_id
        )
        assert attempt.allowed
        attempt.failed()


# --- the person's page ----------------------------------------------------------------------


def test_persons_page_says_when_nothing_is_locked(staff, person) -> None:
    page = staff.get(f"/console/users/{person.pk}/").content.decode()

    assert "Sign-in lockouts" in page
    assert "No failed attempts and no lockout." in page


def test_persons_page_shows_the_lockout_and_unlock_lets_them_sign_in(
    staff, operator, person
) -> None:
    browser = _lock_sign_in("Ada@Example.com")  # any case: one counter
    page = staff.get(f"/console/users/{person.pk}/").content.decode()
    section = page[page.index("Sign-in lockouts") :]
    assert f"from <code>{ATTACKER_IP}</code>" in section
    assert "address-wide" in section  # the address's own counter, counting, not locked
    assert "not locked" in section
    assert "1 min" in section or "59 s" in section  # LOCKOUT_WAIT_INCREMENT 60 s

    done = confirm(staff, f"/console/users/{person.pk}/lockouts/clear/")

    assert done.redirect_chain[-1][0] == f"/console/users/{person.pk}/"
    assert "ada@example.com unlocked: 2 failed-attempt counters cleared." in done.content.decode()
    assert "No failed attempts and no lockout." in done.content.decode()
    [event] = audited("account.unlocked", operator)
    assert (event.resource_type, event.resource_id) == ("account", "ada@example.com")
    assert event.metadata["counters_cleared"] == 2
    signed_in = browser.post("/login", {"email": person.email, "password": PASSWORD})
    assert signed_in.status_code == 302


def test_unlock_asks_first_and_needs_the_csrf_token(staff, person) -> None:
    _lock_sign_in(person.email)
    path = f"/console/users/{person.pk}/lockouts/clear/"

    asked = staff.get(path)
    refused = staff.post(path)

    assert asked.status_code == 200
    assert "Unlock sign-in for ada@example.com?" in asked.content.decode()
    assert refused.status_code == 403
    assert any(lock.locked for lock in services.lockouts_for(kind="login", identifier=person.email))


# --- the Lockouts page ----------------------------------------------------------------------


def test_lockouts_page_lists_what_is_locked_and_links_to_people_and_clients(
    staff, person, rf
) -> None:
    job, _ = client_create(name="Nightly job", redirect_uris=[], grant_types=["client_credentials"])
    _lock_sign_in(person.email)
    _lock_sign_in("nobody@example.com", ip="203.0.113.10")  # login.ip: burst 10 per IP
    _lock_client(rf, job.client_id)
    services.attempt_begin(
        rf.post("/login", REMOTE_ADDR="192.0.2.5"), kind="login", identifier="counting@example.com"
    ).failed()  # one failure: counted, not locked, not listed

    response = staff.get("/console/lockouts/")

    page = response.content.decode()
    assert response.status_code == 200
    assert f'<a href="/console/users/{person.pk}/">ada@example.com</a>' in page
    assert "<code>nobody@example.com</code>" in page
    assert "no account" in page
    assert "Nightly job" in page
    assert "counting@example.com" not in page
    assert page.count(">Unlock</a>") == 3
    assert 'href="/console/lockouts/"' in staff.get("/console/").content.decode()  # the nav


def test_lockouts_page_filters_by_kind_and_says_when_nothing_is_locked(staff, person) -> None:
    _lock_sign_in(person.email)

    clients_only = staff.get("/console/lockouts/", {"kind": "client"}).content.decode()

    assert "Nothing is locked." in clients_only
    assert "ada@example.com" not in clients_only


def test_look_up_an_identifier_that_is_not_locked(staff, rf) -> None:
    services.attempt_begin(
        rf.post("/login", REMOTE_ADDR="192.0.2.5"), kind="login", identifier="Eve@Example.com"
    ).failed()

    page = staff.get("/console/lockouts/", {"identifier": "eve@example.com"}).content.decode()
    none = staff.get("/console/lockouts/", {"identifier": "some-client"}).content.decode()

    assert "Counters of eve@example.com" in page
    assert "from <code>192.0.2.5</code>" in page
    assert "not locked" in page
    assert "Authentication attempts of this client id" in none
    assert "No failed attempts are counted for it." in none


def test_unlock_from_the_lockouts_page(staff, operator, rf) -> None:
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    _lock_client(rf, job.client_id, ip="127.0.0.1")
    token = {"grant_type": "client_credentials"}
    assert (
        HttpClient().post("/oauth/token", token, HTTP_AUTHORIZATION=basic(job.client_id, secret))
    ).status_code == 429

    done = confirm(staff, f"/console/lockouts/unlock/?kind=client&identifier={job.client_id}")

    assert done.redirect_chain[-1][0] == "/console/lockouts/"
    assert f"{job.client_id} unlocked" in done.content.decode()
    [event] = audited("account.unlocked", operator)
    assert (event.resource_type, event.resource_id) == ("client", job.client_id)
    issued = HttpClient().post(
        "/oauth/token", token, HTTP_AUTHORIZATION=basic(job.client_id, secret)
    )
    assert issued.status_code == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kind": "password"}, "Select a valid choice."),
        ({"identifier": "x" * 255}, "at most 254 characters"),
    ],
)
def test_lockouts_page_refuses_malformed_input(staff, query, message) -> None:
    response = staff.get("/console/lockouts/", query)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_unlock_without_an_identifier_is_a_400(staff) -> None:
    assert staff.get("/console/lockouts/unlock/").status_code == 400
    assert staff.get("/console/lockouts/unlock/?kind=other&identifier=x").status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/console/lockouts/",
        "/console/lockouts/unlock/?kind=login&identifier=ada@example.com",
        "/console/users/3f2a6c1e-0000-4000-8000-000000000001/lockouts/clear/",
    ],
)
def test_only_staff_see_lockouts(client, outsider, path: str) -> None:
    assert client.get(path)["Location"].startswith("/login?next=/console/")
    assert outsider.get(path).status_code == 403


def test_a_person_who_is_not_staff_cannot_unlock(outsider, person) -> None:
    _lock_sign_in(person.email)
    token = csrf_token(outsider.get("/login").content)

    for path in (
        f"/console/users/{person.pk}/lockouts/clear/",
        "/console/lockouts/unlock/?kind=login&identifier=ada@example.com",
    ):
        assert outsider.post(path, {"csrfmiddlewaretoken": token}).status_code == 403
    assert (
        outsider.post(
            "/api/v1/lockouts/unlock",
            {"kind": "login", "identifier": person.email},
            content_type="application/json",
            headers={"X-CSRFToken": token},
        ).status_code
        == 403
    )
    assert outsider.get("/api/v1/lockouts").status_code == 403
    assert any(lock.locked for lock in services.lockouts_for(kind="login", identifier=person.email))


# --- the service ----------------------------------------------------------------------------


def test_current_lockouts_are_bounded_and_the_longest_first(rf, redis_client) -> None:
    for n in range(3):
        _lock_client(rf, f"job-{n}")
    redis_client.hset(f"tessera:rl:lock:client:job-1:{ATTACKER_IP}", "lu", 0)  # wait over
    _lock_client(rf, "job-1")  # locked again, twice as long
    assert (
        services.attempt_begin(
            rf.post("/oauth/token", REMOTE_ADDR=ATTACKER_IP), kind="client", identifier="job-1"
        ).decision.reason
        == "locked"
    )

    every = lockouts_current()
    first = lockouts_current(kind="client", limit=2)

    assert [lock.identifier for lock in every.lockouts][:1] == ["job-1"]
    assert not every.truncated
    assert len(first.lockouts) == 2
    assert first.truncated
    assert lockouts_current(kind="login").lockouts == []


def test_an_identifier_is_matched_literally_not_as_a_pattern(rf) -> None:
    # SCAN's MATCH is a glob: "a*@example.com" must not find the counters of ab@example.com
    services.attempt_begin(
        rf.post("/login", REMOTE_ADDR="192.0.2.5"), kind="login", identifier="ab@example.com"
    ).failed()

    assert services.lockouts_for(kind="login", identifier="a*@example.com") == []
    assert services.lockouts_for(kind="login", identifier="[a]b@example.com") == []
    assert services.lockout_clear(kind="login", identifier="a?@example.com", actor_id="x") == 0
    assert len(services.lockouts_for(kind="login", identifier="ab@example.com")) == 2


def test_a_long_identifier_and_an_ipv6_network_are_shown_as_unlock_takes_them(rf) -> None:
    long_id = "client-" + "x" * 200  # keyed by its digest (rules.bounded)
    _lock_client(rf, long_id, ip="2001:db8:1:2::7")

    [lock] = lockouts_current().lockouts

    assert lock.identifier.startswith("sha256-")
    assert lock.ip == "2001:db8:1:2::/64"  # RATELIMIT_IPV6_PREFIX
    assert services.lockout_clear(kind="client", identifier=lock.identifier, actor_id="x") == 2
    assert lockouts_current().lockouts == []


# --- the admin API --------------------------------------------------------------------------


def test_api_lists_lockouts_and_looks_up_an_identifier(staff, person) -> None:
    _lock_sign_in(person.email)

    listed = staff.get("/api/v1/lockouts").json()
    looked_up = staff.get("/api/v1/lockouts", {"identifier": "ADA@example.com"}).json()

    assert listed["truncated"] is False
    [row] = listed["results"]
    assert row == {
        "kind": "login",
        "identifier": "ada@example.com",
        "ip": ATTACKER_IP,
        "failures": 0,
        "lockouts": 1,
        "locked": True,
        "permanent": False,
        "locked_for": row["locked_for"],
    }
    assert 55 <= row["locked_for"] <= 60
    assert {r["ip"] for r in looked_up["results"]} == {"", ATTACKER_IP}
    assert staff.get("/api/v1/lockouts", {"kind": "client"}).json()["results"] == []


def test_api_unlock_with_a_token_records_the_caller(operator, person) -> None:
    browser = _lock_sign_in(person.email)
    http = HttpClient(enforce_csrf_checks=True)
    token = access_token(operator, "openid admin")

    unlocked = http.post(
        "/api/v1/lockouts/unlock",
        {"kind": "login", "identifier": person.email},
        content_type="application/json",
        headers=bearer(token),
    )

    assert unlocked.status_code == 200
    assert unlocked.json() == {"cleared": 2}
    [event] = audited("account.unlocked", operator)
    assert event.metadata["reason"] == "api"
    assert browser.post("/login", {"email": person.email, "password": PASSWORD}).status_code == 302


def test_api_unlock_by_a_staff_session_needs_the_csrf_token(staff, person) -> None:
    body = {"kind": "login", "identifier": person.email}

    refused = staff.post("/api/v1/lockouts/unlock", body, content_type="application/json")

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "password", "identifier": "a@example.com"}, "kind"),
        ({"identifier": "a@example.com"}, "kind"),
        ({"kind": "login"}, "identifier"),
        ({"kind": "login", "identifier": ""}, "identifier"),
        ({"kind": "login", "identifier": "x" * 255}, "identifier"),
        ({"kind": "login", "identifier": ["a@example.com"]}, "identifier"),
    ],
)
def test_api_unlock_names_the_field_at_fault(operator, body, field: str) -> None:
    response = HttpClient().post(
        "/api/v1/lockouts/unlock",
        body,
        content_type="application/json",
        headers=bearer(access_token(operator, "openid admin")),
    )

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_api_unlock_refuses_malformed_json(operator) -> None:
    response = HttpClient().post(
        "/api/v1/lockouts/unlock",
        '{"kind": "login", ',
        content_type="application/json",
        headers=bearer(access_token(operator, "openid admin")),
    )

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"kind": "password"}, "kind"), ({"identifier": "x" * 255}, "identifier")],
)
def test_api_list_names_the_field_at_fault(staff, query, field: str) -> None:
    response = staff.get("/api/v1/lockouts", query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_api_lockouts_need_credentials(client) -> None:
    assert client.get("/api/v1/lockouts").status_code == 401
    assert client.post("/api/v1/lockouts/unlock").status_code == 401


# --- second-factor lockouts (kind "mfa", keyed by the account id; issue 15) -----------------


def _lock_second_factor(rf, person) -> None:
    """Wrong second-factor answers (apps/signin/second_factor.py prove) until the person's one
    counter locks (MFA_LOCKOUT_THRESHOLD, 5 by default)."""
    for _ in range(5):
        attempt = services.attempt_begin(
            rf.post("/login/second-factor", REMOTE_ADDR=ATTACKER_IP),
            kind="mfa",
            identifier=str(person.pk),
            user_id=person.pk,
        )
        assert attempt.allowed
        attempt.failed()
    assert any(lock.locked for lock in services.lockouts_for(kind="mfa", identifier=str(person.pk)))


def test_persons_page_lists_a_second_factor_lockout_and_unlock_clears_it(
    staff, operator, person, rf
) -> None:
    _lock_second_factor(rf, person)

    page = staff.get(f"/console/users/{person.pk}/").content.decode()
    section = page[page.index("Sign-in lockouts") : page.index("Rate-limit blocks")]
    assert "second factor, from any address" in section
    assert "No failed attempts and no lockout." not in section
    assert f'href="/console/users/{person.pk}/lockouts/clear/"' in section

    done = confirm(staff, f"/console/users/{person.pk}/lockouts/clear/")

    assert "ada@example.com unlocked: 1 failed-attempt counter cleared." in done.content.decode()
    assert services.lockouts_for(kind="mfa", identifier=str(person.pk)) == []
    unlocked = {event.metadata["kind"]: event for event in audited("account.unlocked", operator)}
    assert set(unlocked) == {"login", "mfa"}
    assert (unlocked["mfa"].resource_type, unlocked["mfa"].resource_id) == (
        "account",
        str(person.pk),
    )


def test_persons_unlock_records_no_second_factor_unlock_when_none_is_counted(
    staff, operator, person
) -> None:
    _lock_sign_in(person.email)

    confirm(staff, f"/console/users/{person.pk}/lockouts/clear/")

    [event] = audited("account.unlocked", operator)
    assert event.metadata["kind"] == "login"


def test_lockouts_page_lists_second_factor_lockouts_and_unlocks_them(
    staff, operator, person, rf
) -> None:
    _lock_second_factor(rf, person)

    page = staff.get("/console/lockouts/").content.decode()
    only_mfa = staff.get("/console/lockouts/", {"kind": "mfa"}).content.decode()
    looked_up = staff.get(
        "/console/lockouts/", {"kind": "mfa", "identifier": str(person.pk)}
    ).content.decode()

    assert f'<a href="/console/users/{person.pk}/">{person.pk}</a>' in page
    assert "second factor" in page
    unlock = f"/console/lockouts/unlock/?kind=mfa&amp;identifier={person.pk}"
    assert unlock in page
    assert f'<a href="/console/users/{person.pk}/">{person.pk}</a>' in only_mfa
    assert "Second-factor answers of this account" in looked_up
    assert (
        "Nothing is locked." in staff.get("/console/lockouts/", {"kind": "login"}).content.decode()
    )

    asked = staff.get(unlock.replace("&amp;", "&"))
    assert f"Unlock the second factor of account {person.pk}?" in asked.content.decode()
    confirm(staff, unlock.replace("&amp;", "&"))
    assert services.lockouts_for(kind="mfa", identifier=str(person.pk)) == []
    [event] = audited("account.unlocked", operator)
    assert event.metadata["kind"] == "mfa"


@pytest.mark.parametrize("path", ["/console/lockouts/", "/console/lockouts/unlock/"])
def test_a_second_factor_lockout_is_named_by_an_account_id(staff, path: str) -> None:
    response = staff.get(path, {"kind": "mfa", "identifier": "ada@example.com"})

    assert response.status_code == 400
    assert "named by the account id" in response.content.decode()


def test_api_lists_and_unlocks_second_factor_lockouts(operator, person, rf) -> None:
    _lock_second_factor(rf, person)
    headers = bearer(access_token(operator, "openid admin"))

    listed = HttpClient().get("/api/v1/lockouts", {"kind": "mfa"}, headers=headers).json()
    [found] = listed["results"]
    assert (found["kind"], found["identifier"], found["locked"]) == ("mfa", str(person.pk), True)
    response = HttpClient().post(
        "/api/v1/lockouts/unlock",
        {"kind": "mfa", "identifier": str(person.pk)},
        content_type="application/json",
        headers=headers,
    )

    assert response.json() == {"cleared": 1}
    assert services.lockouts_for(kind="mfa", identifier=str(person.pk)) == []
