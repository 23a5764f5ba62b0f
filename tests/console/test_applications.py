"""Applications and keys in the console and the admin API: OAuth clients (list, search,
register, edit, rotate the secret, disable, enable, delete) and signing keys (chains with
state, rotate now). Staff read; administrators change; every change is an event with the
operator as actor_id; bad input is a 400 naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.models import SecurityEvent
from apps.keys.models import SigningKey
from apps.tokens.clients import client_by_id
from apps.tokens.models import AccessToken, Client, RefreshToken
from apps.tokens.services import client_create, consent_grant
from apps.tokens.validation import InvalidToken, validate_access_token
from tests.console.conftest import access_token, audited, bearer, confirm, csrf_token
from tests.rp import PASSWORD, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import SCOPE, Flow, form_post

pytestmark = pytest.mark.django_db

TOKEN = "/oauth/token"


@pytest.fixture
def viewer(db) -> HttpClient:
    """A signed-in staff member who may only read."""
    http = HttpClient(enforce_csrf_checks=True)
    force_sign_in(
        http, user_create(email="viewer@example.com", password=PASSWORD, staff_role="viewer")
    )
    return http


@pytest.fixture
def admin_token(operator) -> str:
    return access_token(operator, "openid admin")


@pytest.fixture
def viewer_token(db) -> str:
    person = user_create(email="reader@example.com", password=PASSWORD, staff_role="viewer")
    return access_token(person, "openid admin")


@pytest.fixture
def app_client(db) -> Client:
    client, _ = client_create(
        name="Shop",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        client_id="shop-web",
    )
    return client


def api(token: str) -> HttpClient:
    return HttpClient(headers=bearer(token))


def post_json(http: HttpClient, path: str, body: Any, method: str = "post") -> Any:
    return getattr(http, method)(path, json.dumps(body), content_type="application/json")


def signed_in_tokens(person, client: Client, secret: str | None) -> tuple[Flow, dict[str, Any]]:
    """`person` signs in to `client` through the real authorization code flow."""
    consent_grant(user_id=person.pk, client=client, scopes=SCOPE.split())
    browser = HttpClient()
    force_sign_in(browser, person)
    flow = Flow(browser, RegisteredClient(client.client_id, secret))
    return flow, flow.tokens()


# --- who may do what ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/console/clients/", "/console/clients/shop-web/", "/console/keys/"],
)
def test_viewers_see_clients_and_keys(viewer: HttpClient, app_client: Client, path: str) -> None:
    page = viewer.get(path)

    assert page.status_code == 200
    assert b"Rotate secret" not in page.content
    assert b"Rotate now" not in page.content


@pytest.mark.parametrize(
    "path",
    [
        "/console/clients/register/",
        "/console/clients/shop-web/edit/",
        "/console/clients/shop-web/secret/",
        "/console/clients/shop-web/disable/",
        "/console/clients/shop-web/enable/",
        "/console/clients/shop-web/delete/",
        "/console/keys/rotate/",
    ],
)
def test_viewers_are_refused_every_change_page(
    viewer: HttpClient, app_client: Client, path: str
) -> None:
    assert viewer.get(path).status_code == 403
    # without the CSRF check, so that the role is what refuses the POST
    lax = HttpClient()
    force_sign_in(lax, User.objects.get(email="viewer@example.com"))
    assert lax.post(path, {}).status_code == 403
    assert not SecurityEvent.objects.filter(event_type__in=["client.changed", "key.rotated"])
    assert Client.objects.filter(client_id="shop-web", disabled_at__isnull=True).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/clients"),
        ("patch", "/api/v1/clients/shop-web"),
        ("delete", "/api/v1/clients/shop-web"),
        ("post", "/api/v1/clients/shop-web/secret"),
        ("post", "/api/v1/clients/shop-web/disable"),
        ("post", "/api/v1/clients/shop-web/enable"),
        ("post", "/api/v1/keys/rotate"),
    ],
)
def test_viewers_are_refused_every_api_change(
    viewer_token: str, app_client: Client, method: str, path: str
) -> None:
    response = post_json(api(viewer_token), path, {"name": "x"}, method=method)

    assert response.status_code == 403
    assert Client.objects.filter(client_id="shop-web", disabled_at__isnull=True).exists()
    assert not SecurityEvent.objects.filter(event_type__startswith="client.", actor_id__gt="")


def test_viewers_read_clients_and_keys_through_the_api(
    viewer_token: str, app_client: Client
) -> None:
    listed = api(viewer_token).get("/api/v1/clients")
    keys = api(viewer_token).get("/api/v1/keys")

    assert listed.status_code == 200
    assert "shop-web" in [c["client_id"] for c in listed.json()["results"]]
    assert keys.status_code == 200
    assert {chain["alg"] for chain in keys.json()["results"]} == {"RS256", "ES256", "EdDSA"}


def test_people_who_are_not_staff_see_nothing(outsider: HttpClient, app_client: Client) -> None:
    assert outsider.get("/console/clients/").status_code == 403
    assert outsider.get("/api/v1/clients").status_code == 403


# --- list and search ----------------------------------------------------------------------


def test_clients_are_listed_newest_first_a_keyset_page_at_a_time(
    staff: HttpClient, admin_token: str
) -> None:
    for n in range(52):
        client_create(name=f"App {n:02}", redirect_uris=[REDIRECT_URI])

    first = api(admin_token).get("/api/v1/clients").json()
    second = api(admin_token).get(f"/api/v1/clients?after={first['next']}").json()

    names = [c["name"] for c in first["results"] + second["results"]]
    assert names[:2] == ["App 51", "App 50"]
    assert "App 00" in names
    assert len(names) == len(set(names))
    assert second["next"] is None
    page = staff.get("/console/clients/")
    assert b"Next page" in page.content


def test_search_finds_a_client_by_id_or_part_of_its_name(
    staff: HttpClient, app_client: Client
) -> None:
    client_create(name="Payroll", redirect_uris=[REDIRECT_URI])

    assert b"Shop" in staff.get("/console/clients/?q=shop-web").content
    by_name = staff.get("/console/clients/?q=payr").content
    assert b"Payroll" in by_name
    assert b"Shop" not in by_name


def test_a_malformed_page_link_is_a_400(staff: HttpClient, admin_token: str) -> None:
    assert staff.get("/console/clients/?after=x").status_code == 400
    assert staff.get(f"/console/clients/?after={10**30}").status_code == 400
    response = api(admin_token).get("/api/v1/clients?after=x")
    assert response.status_code == 400
    assert "after" in response.json()


# --- register -----------------------------------------------------------------------------


def test_registering_in_the_console_shows_the_secret_once(staff: HttpClient, operator) -> None:
    form = staff.get("/console/clients/register/")
    response = staff.post(
        "/console/clients/register/",
        {
            "csrfmiddlewaretoken": csrf_token(form.content),
            "name": "Billing",
            "redirect_uris": "https://billing.example.com/cb\nhttps://billing.example.com/cb2",
            "grant_types": ["authorization_code", "refresh_token"],
            "id_token_alg": "ES256",
            "require_pkce": "on",
        },
    )

    assert response.status_code == 200
    secret = re.search(rb'class="secret-value">([^<]+)<', response.content)
    assert secret, "the secret is not on the page"
    client = Client.objects.get(name="Billing")
    assert client.redirect_uris.split() == [
        "https://billing.example.com/cb",
        "https://billing.example.com/cb2",
    ]
    assert client.id_token_signed_response_alg == "ES256"
    assert check_password(secret.group(1).decode(), client.client_secret)  # stored hashed
    assert secret.group(1) not in client.client_secret.encode()
    assert secret.group(1) not in staff.get(f"/console/clients/{client.client_id}/").content
    [event] = audited("client.created", operator)
    assert event.resource_id == client.client_id


def test_registering_through_the_api_answers_the_secret_once(admin_token: str, operator) -> None:
    response = post_json(
        api(admin_token),
        "/api/v1/clients",
        {"name": "Batch", "grant_types": ["client_credentials"], "client_id": "batch-job"},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["client_id"] == "batch-job"
    assert body["public"] is False
    later = api(admin_token).get("/api/v1/clients/batch-job").json()
    assert "client_secret" not in later
    # the secret works at the token endpoint (RFC 6749 §4.4)
    issued = form_post(
        HttpClient(), TOKEN, {"grant_type": "client_credentials"},
        auth=RegisteredClient("batch-job", body["client_secret"]),
    )  # fmt: skip
    assert issued.status_code == 200, issued.content
    assert audited("client.created", operator)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "X", "grant_types": ["password"]}, "grant_types", "not a valid choice"),
        ({"name": "X", "redirect_uris": []}, "redirect_uris", "at least one"),
        ({"name": "X", "redirect_uris": ["https://a.example/cb#x"]}, "redirect_uris", "fragment"),
        ({"name": "X", "redirect_uris": ["ftp://a.example/cb"]}, "redirect_uris", ""),
        ({"name": "X", "public": True, "require_pkce": False, "redirect_uris": [REDIRECT_URI]},
         "require_pkce", "PKCE"),
        ({"name": "X", "public": True, "grant_types": ["client_credentials"]},
         "grant_types", "public client"),
        ({"name": "X", "id_token_alg": "HS256", "redirect_uris": [REDIRECT_URI]},
         "id_token_alg", ""),
        ({"name": "", "redirect_uris": [REDIRECT_URI]}, "name", ""),
        ({"name": "X", "client_id": "has space", "redirect_uris": [REDIRECT_URI]},
         "client_id", "letters"),
        ({"name": "X", "redirect_uris": [REDIRECT_URI],
          "backchannel_logout_uri": "javascript:alert(1)"}, "backchannel_logout_uri", "absolute"),
        ({"redirect_uris": [REDIRECT_URI]}, "name", "required"),
        ({"name": "X", "redirect_uris": "https://a.example/cb"}, "redirect_uris", "list"),
    ],
)  # fmt: skip
def test_bad_registrations_are_a_400_naming_the_field(
    admin_token: str, body: dict[str, Any], field: str, words: str
) -> None:
    response = post_json(api(admin_token), "/api/v1/clients", body)

    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert words in json.dumps(errors[field])  # a list's items' errors are keyed by index
    assert not Client.objects.filter(name="X").exists()


def test_a_taken_client_id_is_a_400(admin_token: str, app_client: Client) -> None:
    body = {"name": "Again", "client_id": "shop-web", "redirect_uris": [REDIRECT_URI]}
    response = post_json(api(admin_token), "/api/v1/clients", body)

    assert response.status_code == 400
    assert "already exists" in response.json()["client_id"][0]


def test_a_body_that_is_not_json_is_a_400(admin_token: str) -> None:
    response = api(admin_token).post("/api/v1/clients", "{", content_type="application/json")
    assert response.status_code == 400
    response = post_json(api(admin_token), "/api/v1/clients", ["a list"])
    assert response.status_code == 400


def test_the_register_form_puts_the_services_error_on_its_field(staff: HttpClient) -> None:
    form = staff.get("/console/clients/register/")
    response = staff.post(
        "/console/clients/register/",
        {
            "csrfmiddlewaretoken": csrf_token(form.content),
            "name": "Bad",
            "redirect_uris": "https://a.example/cb#frag",
            "grant_types": ["authorization_code"],
            "id_token_alg": "RS256",
        },
    )

    assert response.status_code == 400
    assert b'id="id_redirect_uris_error"' in response.content
    assert b"fragment" in response.content
    assert not Client.objects.exists()


# --- edit ---------------------------------------------------------------------------------


def test_editing_records_before_and_after(
    staff: HttpClient, admin_token: str, app_client: Client, operator
) -> None:
    response = post_json(
        api(admin_token),
        "/api/v1/clients/shop-web",
        {
            "redirect_uris": ["https://shop.example.com/cb"],
            "post_logout_redirect_uris": ["https://shop.example.com/bye"],
            "skip_consent": True,
            "id_token_alg": "EdDSA",
        },
        method="patch",
    )

    assert response.status_code == 200, response.content
    assert response.json()["redirect_uris"] == ["https://shop.example.com/cb"]
    app_client.refresh_from_db()
    assert app_client.skip_authorization
    assert app_client.id_token_signed_response_alg == "EdDSA"
    assert app_client.name == "Shop"  # untouched
    [event] = audited("client.changed", operator)
    assert event.action == "updated"
    assert event.metadata["before"]["redirect_uris"] == [REDIRECT_URI]
    assert event.metadata["after"]["id_token_alg"] == "EdDSA"
    # the protocol sees the change: the cached client was told (apps.tokens.receivers)
    assert client_by_id("shop-web").redirect_uris == "https://shop.example.com/cb"


def test_editing_in_the_console(staff: HttpClient, app_client: Client, operator) -> None:
    form = staff.get("/console/clients/shop-web/edit/")
    assert b"https://rp.example.com/callback" in form.content
    response = staff.post(
        "/console/clients/shop-web/edit/",
        {
            "csrfmiddlewaretoken": csrf_token(form.content),
            "name": "Shop (new)",
            "redirect_uris": REDIRECT_URI,
            "grant_types": ["authorization_code"],
            "id_token_alg": "RS256",
            "require_pkce": "on",
            # the boxes the page ticked, but offline_access: it needs refresh_token
            "allowed_scopes": ["openid", "profile", "email"],
        },
        follow=True,
    )

    assert response.status_code == 200
    assert b"name, grant_types, allowed_scopes changed" in response.content
    app_client.refresh_from_db()
    assert app_client.name == "Shop (new)"
    assert app_client.grant_types == "authorization_code"
    assert audited("client.changed", operator)


def test_an_edit_that_breaks_a_rule_is_a_400_and_changes_nothing(
    admin_token: str, app_client: Client
) -> None:
    response = post_json(
        api(admin_token), "/api/v1/clients/shop-web", {"redirect_uris": []}, method="patch"
    )

    assert response.status_code == 400
    assert "redirect_uris" in response.json()
    app_client.refresh_from_db()
    assert app_client.redirect_uris == REDIRECT_URI
    assert not SecurityEvent.objects.filter(event_type="client.changed").exists()


def test_unknown_clients_are_404(staff: HttpClient, admin_token: str) -> None:
    assert staff.get("/console/clients/nobody/").status_code == 404
    assert api(admin_token).get("/api/v1/clients/nobody").status_code == 404
    assert api(admin_token).post("/api/v1/clients/nobody/disable").status_code == 404


# --- the secret ---------------------------------------------------------------------------


def test_rotating_the_secret_shows_the_new_one_once_and_the_old_one_stops(
    staff: HttpClient, operator
) -> None:
    _client, old = client_create(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], client_id="batch"
    )
    page = staff.get("/console/clients/batch/secret/")
    assert b"stops working at once" in page.content

    shown = staff.post(
        "/console/clients/batch/secret/", {"csrfmiddlewaretoken": csrf_token(page.content)}
    )

    new = re.search(rb'class="secret-value">([^<]+)<', shown.content)
    assert new
    assert new.group(1).decode() != old
    assert shown["Cache-Control"].startswith("max-age=0")  # never cached
    grant = {"grant_type": "client_credentials"}
    assert (
        form_post(HttpClient(), TOKEN, grant, auth=RegisteredClient("batch", old)).status_code
        == 401
    )
    fresh = RegisteredClient("batch", new.group(1).decode())
    assert form_post(HttpClient(), TOKEN, grant, auth=fresh).status_code == 200
    [event] = audited("client.changed", operator)
    assert event.action == "secret_rotated"
    assert new.group(1).decode() not in json.dumps(event.metadata)


def test_a_public_client_has_no_secret_to_rotate(admin_token: str) -> None:
    client_create(name="SPA", redirect_uris=[REDIRECT_URI], public=True, client_id="spa")

    response = api(admin_token).post("/api/v1/clients/spa/secret")

    assert response.status_code == 400
    assert "client" in response.json()


# --- disable and enable -------------------------------------------------------------------


def test_a_disabled_client_is_refused_until_enabled(
    staff: HttpClient, admin_token: str, operator, person
) -> None:
    client, secret = client_create(name="Mail", redirect_uris=[REDIRECT_URI], client_id="mail")
    flow, tokens = signed_in_tokens(person, client, secret)

    response = confirm(staff, "/console/clients/mail/disable/")

    assert b"Mail disabled" in response.content
    with pytest.raises(InvalidToken):  # its stored access token is on the revocation list
        validate_access_token(tokens["access_token"])
    assert flow.refresh(tokens["refresh_token"]).status_code == 401  # unknown client now
    assert RefreshToken.objects.filter(application=client, revoked__isnull=True).exists()

    enabled = api(admin_token).post("/api/v1/clients/mail/enable")

    assert enabled.json()["disabled"] is False
    assert flow.refresh(tokens["refresh_token"]).status_code == 200  # kept, usable again
    assert [e.action for e in audited("client.changed", operator)] == ["disabled", "enabled"]


def test_a_client_credentials_token_ends_when_its_client_is_disabled(staff: HttpClient) -> None:
    """Never stored, so never on the revocation list: the validation service asks whether
    its client is still enabled."""
    client_create(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], client_id="batch"
    )
    rotated = staff.post(
        "/console/clients/batch/secret/",
        {"csrfmiddlewaretoken": csrf_token(staff.get("/console/clients/batch/secret/").content)},
    )
    secret = re.search(rb'class="secret-value">([^<]+)<', rotated.content)
    assert secret
    issued = form_post(
        HttpClient(), TOKEN, {"grant_type": "client_credentials"},
        auth=RegisteredClient("batch", secret.group(1).decode()),
    )  # fmt: skip
    token = issued.json()["access_token"]
    assert validate_access_token(token)

    confirm(staff, "/console/clients/batch/disable/")

    with pytest.raises(InvalidToken, match="disabled or deleted"):
        validate_access_token(token)


# --- delete -------------------------------------------------------------------------------


def test_the_delete_confirmation_says_what_goes(staff: HttpClient, app_client: Client) -> None:
    page = staff.get("/console/clients/shop-web/delete/")

    assert page.status_code == 200
    for words in (
        b"refresh token(s) are revoked",
        b"revocation list",
        b"not told",
        b"cannot be undone",
    ):
        assert words in page.content
    assert Client.objects.filter(client_id="shop-web").exists()  # GET changes nothing


def test_deleting_a_client_revokes_its_tokens(staff: HttpClient, operator, person) -> None:
    client, secret = client_create(
        name="Notes",
        redirect_uris=[REDIRECT_URI],
        client_id="notes",
        backchannel_logout_uri="https://notes.example.com/logout",
    )
    flow, tokens = signed_in_tokens(person, client, secret)
    assert validate_access_token(tokens["access_token"])["client_id"] == "notes"

    page = staff.get("/console/clients/notes/delete/")
    assert b"https://notes.example.com/logout" in page.content  # the RP is told
    response = confirm(staff, "/console/clients/notes/delete/")

    assert response.redirect_chain[-1][0] == "/console/clients/"
    assert b"1 session(s) being told" in response.content
    assert not Client.objects.filter(client_id="notes").exists()
    assert not AccessToken.objects.filter(jti=tokens["access_token"]).exists()
    with pytest.raises(InvalidToken):  # RFC 7009 §2: refused now, not at expiry
        validate_access_token(tokens["access_token"])
    refused = flow.refresh(tokens["refresh_token"])
    assert refused.status_code in (400, 401)  # the client is unknown; its token is gone
    assert refused.json()["error"] in ("invalid_client", "invalid_grant")
    [event] = audited("client.deleted", operator)
    assert event.resource_id == "notes"
    assert event.metadata["refresh_tokens_revoked"] == 1
    assert event.metadata["access_tokens_revoked"] == 1
    assert event.metadata["sessions_told"] == 1


def test_deleting_through_the_api_answers_what_was_revoked(
    admin_token: str, operator, person
) -> None:
    client, secret = client_create(name="Docs", redirect_uris=[REDIRECT_URI], client_id="docs")
    signed_in_tokens(person, client, secret)

    response = api(admin_token).delete("/api/v1/clients/docs")

    assert response.status_code == 200
    assert response.json() == {
        "client_id": "docs",
        "refresh_tokens_revoked": 1,
        "access_tokens_revoked": 1,
        "offline_grants_ended": 0,
        "sessions_told": 0,
    }
    assert audited("client.deleted", operator)


# --- keys ---------------------------------------------------------------------------------


def test_the_keys_page_shows_each_chain_with_state(staff: HttpClient) -> None:
    page = staff.get("/console/keys/")

    assert page.status_code == 200
    for alg in (b"RS256", b"ES256", b"EdDSA"):
        assert alg in page.content
    assert b">active<" in page.content


def test_rotating_keys_now_retires_the_old_ones_and_keeps_them_published(
    staff: HttpClient, admin_token: str, operator
) -> None:
    before = api(admin_token).get("/api/v1/keys").json()["results"]
    old = {chain["alg"]: chain["keys"][0]["kid"] for chain in before}
    page = staff.get("/console/keys/rotate/")
    assert b"stay in the JWKS" in page.content
    assert b"signs every new token" in page.content

    confirm(staff, "/console/keys/rotate/")

    after = {c["alg"]: c["keys"] for c in api(admin_token).get("/api/v1/keys").json()["results"]}
    for alg, kid in old.items():
        newest, previous = after[alg][0], after[alg][1]
        assert newest["state"] == "active"
        assert newest["kid"] != kid
        assert previous["kid"] == kid
        assert previous["state"] == "retired"
        assert previous["published_until"] is not None
    jwks = {k["kid"] for k in HttpClient().get("/oauth/jwks").json()["keys"]}
    assert set(old.values()) <= jwks  # old tokens still verify
    events = audited("key.rotated", operator)
    assert {e.action for e in events} >= {"created", "retired", "activated"}


def test_rotating_keys_through_the_api(admin_token: str, operator) -> None:
    api(admin_token).get("/api/v1/keys")  # the first keys exist

    response = api(admin_token).post("/api/v1/keys/rotate")

    assert response.status_code == 200
    created = response.json()["created"]
    assert sorted(k["alg"] for k in created) == ["ES256", "EdDSA", "RS256"]
    assert SigningKey.objects.count() == 6
    assert audited("key.rotated", operator)


def test_schema_documents_the_applications_endpoints(staff: HttpClient) -> None:
    import yaml

    schema = yaml.safe_load(staff.get("/api/schema/").content)

    for path in (
        "/api/v1/clients",
        "/api/v1/clients/{client_id}",
        "/api/v1/clients/{client_id}/secret",
        "/api/v1/clients/{client_id}/disable",
        "/api/v1/clients/{client_id}/enable",
        "/api/v1/keys",
        "/api/v1/keys/rotate",
    ):
        assert path in schema["paths"], path
    assert "400" in schema["paths"]["/api/v1/clients"]["post"]["responses"]
