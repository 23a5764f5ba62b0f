"""Tests for the security map's entries that were met but shown by no test (docs/security.md,
"Met, but no test shows it"): each asserts what the map had read from the code or the
templates, on the pages and answers themselves."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth.hashers import check_password
from django.contrib.staticfiles import finders
from django.test import Client as HttpClient

from apps.accounts.invitations import invitation_create
from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.core.redis import get_redis
from apps.mfa.passkeys import webauthn_registration_begin, webauthn_registration_finish
from apps.signin.links import link_make
from apps.signin.recovery import RESET
from apps.signin.registration import REDIS_PREFIX
from apps.tokens.models import Client
from apps.tokens.services import consent_grant
from tests.accounts.factories import OrganizationFactory, RoleFactory
from tests.console.conftest import access_token, bearer, csrf_token
from tests.mfa.authenticator import SoftAuthenticator
from tests.rp import PASSWORD, POST_LOGOUT_URI, REDIRECT_URI, RegisteredClient
from tests.signin.browser import force_sign_in
from tests.tokens.conftest import AUTHORIZE, Flow, authorize_params, new_pkce

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
# Leading and trailing spaces, and two inside: NIST SP 800-63B §5.1.1.2 / ASVS 6.2.8 (no
# truncation and no change of what the person typed).
SPACED = "  a passphrase with spaces at both ends  "
ORIGIN = "https://id.example.com"


class Inputs(HTMLParser):
    """Every <input>, <form> and <script> of a page, and any inline event handler."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str]] = []
        self.forms: list[dict[str, str]] = []
        self.scripts: list[str] = []
        self.inline_script = ""
        self.handlers: list[tuple[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.handlers += [(tag, name) for name in values if name.startswith("on")]
        if tag == "input":
            self.inputs.append(values)
        elif tag == "form":
            self.forms.append(values)
        elif tag == "script":
            if values.get("src"):
                self.scripts.append(values["src"])
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data


def parsed(response: Any) -> Inputs:
    assert response.status_code == 200, response.content[:300]
    page = Inputs()
    page.feed(response.content.decode())
    return page


def password_fields(page: Inputs) -> dict[str, tuple[str, str]]:
    """name → (type, autocomplete) of each input that takes a password."""
    return {
        field["name"]: (field.get("type", ""), field.get("autocomplete", ""))
        for field in page.inputs
        if field.get("type") == "password"
        or (
            "password" in field.get("name", "")
            and field.get("type", "text") not in ("hidden", "submit", "radio", "checkbox")
        )
    }


def script_text(page: Inputs) -> str:
    """The page's own scripts: inline, and each static file it loads, read from disk."""
    texts = [page.inline_script]
    for src in page.scripts:
        path = urlsplit(src).path
        assert path.startswith("/static/"), f"a script from elsewhere: {src}"
        # The manifest storage names a file by its hash: mfa/webauthn.596a595ec5dd.js
        name = re.sub(r"\.[0-9a-f]{12}(\.\w+)$", r"\1", path.removeprefix("/static/"))
        found = finders.find(name)
        assert found, f"{src} is not one of our static files"
        texts.append(Path(str(found)).read_text())
    return "\n".join(texts)


def new_ada(**fields: Any) -> User:
    return user_create(email="ada@example.com", name="Ada Lovelace", password=PASSWORD, **fields)


def signed_in(user: User) -> HttpClient:
    http = HttpClient()
    force_sign_in(http, user)
    return http


CURRENT, NEW = "current-password", "new-password"


def _login(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    return HttpClient(), "/login", {"password": CURRENT}


def _register(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    settings.REGISTRATION = "open"
    return HttpClient(), "/register", {"password1": NEW, "password2": NEW}


def _invite(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    _, token = invitation_create(
        organization=OrganizationFactory(), role=RoleFactory(), actor_id=None, max_uses=1
    )
    return HttpClient(), f"/invite/{token}", {"password1": NEW, "password2": NEW}


def _reset(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    token = link_make(RESET, new_ada())
    return HttpClient(), f"/password/reset/{token}", {"password": NEW, "password_again": NEW}


def _account(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    fields = {  # the e-mail change asks the current password; then the password change
        "password": CURRENT,
        "current_password": CURRENT,
        "new_password": NEW,
        "new_password_again": NEW,
    }
    return signed_in(new_ada()), "/account/", fields


def _reauthenticate(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    return signed_in(new_ada()), "/account/security/confirm", {"password": CURRENT}


def _admin_set_password(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    admin = user_create(email="root@example.com", password=PASSWORD, staff_role="administrator")
    target = new_ada()
    path = f"/admin/accounts/user/{target.pk}/password/"
    return signed_in(admin), path, {"password1": NEW, "password2": NEW}


def _admin_own_password(settings: Any) -> tuple[HttpClient, str, dict[str, str]]:
    admin = user_create(email="root@example.com", password=PASSWORD, staff_role="administrator")
    fields = {"old_password": CURRENT, "new_password1": NEW, "new_password2": NEW}
    return signed_in(admin), "/admin/password_change/", fields


PASSWORD_PAGES = {
    "sign-in": _login,
    "sign-up": _register,
    "invitation sign-up": _invite,
    "password reset": _reset,
    "account page (password change, e-mail change)": _account,
    "re-authentication": _reauthenticate,
    "admin: set a person's password": _admin_set_password,
    "admin: change one's own password": _admin_own_password,
}


@pytest.mark.parametrize("page_name", PASSWORD_PAGES)
def test_every_password_field_is_masked_autocompletes_and_lets_paste_in(
    page_name: str, settings: Any
) -> None:
    # ASVS 6.2.6: type="password" (masked, with the browser's own show/hide);
    # ASVS 6.2.7: paste, browser password managers and external ones allowed: autocomplete
    # says current-password or new-password (WHATWG HTML §4.10.18.7.1), no form turns it
    # off, and nothing intercepts paste (no inline handler, no paste listener in our scripts).
    http, path, expected = PASSWORD_PAGES[page_name](settings)

    page = parsed(http.get(path))

    assert password_fields(page) == {name: ("password", how) for name, how in expected.items()}
    assert all(form.get("autocomplete", "") != "off" for form in page.forms)
    assert page.handlers == []
    assert "paste" not in script_text(page).lower()


def test_every_password_form_of_the_templates_is_among_the_pages_rendered() -> None:
    # A new template with a password field must join PASSWORD_PAGES above.
    with_passwords = sorted(
        str(path.relative_to(ROOT / "templates"))
        for path in (ROOT / "templates").rglob("*.html")
        if re.search(r'type="password"|type=password|with field=\w+\.\w*password', path.read_text())
    )
    assert with_passwords == [
        "signin/account.html",  # /account/
        "signin/login.html",  # /login
        "signin/reauthenticate.html",  # /account/security/confirm
        "signin/register_form.html",  # /register and /invite/<token>
        "signin/reset.html",  # /password/reset/<token>
    ]


# --- ASVS 6.2.8: the password is verified exactly as typed -------------------------------


def signs_in(password: str) -> bool:
    http = HttpClient()
    http.get("/login")
    answer = http.post("/login", {"email": "ada@example.com", "password": password})
    return answer.status_code == 302 and "tessera_sid" in http.session


def test_a_password_set_at_reset_with_spaces_at_both_ends_signs_in_only_as_typed() -> None:
    ada = new_ada()
    token = link_make(RESET, ada)

    done = HttpClient().post(
        f"/password/reset/{token}", {"token": token, "password": SPACED, "password_again": SPACED}
    )

    assert done.status_code == 200, done.content[:300]
    ada.refresh_from_db()
    assert ada.check_password(SPACED)
    assert signs_in(SPACED)
    assert not signs_in(SPACED.strip())


def test_a_password_changed_on_the_account_page_to_one_with_spaces_is_kept_as_typed() -> None:
    ada = new_ada()
    http = signed_in(ada)
    form = http.get("/account/")

    changed = http.post(
        "/account/password",
        {
            "csrfmiddlewaretoken": csrf_token(form.content),
            "current_password": PASSWORD,
            "new_password": SPACED,
            "new_password_again": SPACED,
        },
    )

    assert changed.status_code in (200, 302), changed.content[:300]
    ada.refresh_from_db()
    assert ada.check_password(SPACED)
    assert signs_in(SPACED)
    assert not signs_in(SPACED.strip())


def test_a_sign_up_with_spaces_at_both_ends_keeps_them(settings: Any) -> None:
    settings.REGISTRATION = "open"
    http = HttpClient()
    http.get("/register")
    form = {"name": "Ada Lovelace", "email": "ada@example.com", "password1": SPACED,
            "password2": SPACED}  # fmt: skip

    assert http.post("/register", form).status_code == 200

    # The pending registration (apps/signin/registration.py) holds the hash the account is
    # created with when the mailed link is confirmed.
    redis = get_redis()
    [key] = list(redis.scan_iter(match=f"{REDIS_PREFIX}*"))
    hashed = re.search(rb'"password": "([^"]+)"', redis.get(key))
    assert hashed, "no password hash in the pending registration"
    assert check_password(SPACED, hashed.group(1).decode())
    assert not check_password(SPACED.strip(), hashed.group(1).decode())


def test_re_authentication_takes_a_password_with_spaces_at_both_ends_as_typed() -> None:
    ada = new_ada()
    ada.set_password(SPACED)
    ada.save()
    http = signed_in(ada)
    page = http.get("/account/security/confirm")
    token = csrf_token(page.content)

    stripped = http.post(
        "/account/security/confirm",
        {"csrfmiddlewaretoken": token, "method": "password", "password": SPACED.strip()},
    )
    assert stripped.status_code == 400
    confirmed = http.post(
        "/account/security/confirm",
        {"csrfmiddlewaretoken": token, "method": "password", "password": SPACED},
    )
    assert confirmed.status_code == 302, confirmed.content[:300]


# --- ASVS 6.7.2: WebAuthn challenges ------------------------------------------------------

# py_webauthn's generate_challenge(): secrets.token_bytes(64); Tessera passes no challenge of
# its own, so every ceremony's challenge is 64 random bytes (ASVS 6.7.2 asks at least 64 bits).
CHALLENGE_BYTES = 64


def challenge_of(response: Any) -> bytes:
    assert response.status_code == 200, response.content[:300]
    encoded: str = response.json()["publicKey"]["challenge"]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def test_webauthn_challenges_are_64_random_bytes_in_every_ceremony(settings: Any) -> None:
    settings.ISSUER = ORIGIN  # the relying party id and origin the soft authenticator uses
    ada = new_ada()
    device = SoftAuthenticator(origin=ORIGIN, rp_id="id.example.com")
    ceremony = webauthn_registration_begin(user=ada)
    webauthn_registration_finish(
        user=ada, ceremony_id=ceremony.id, response=device.create(ceremony.options_json),
        name="Key",
    )  # fmt: skip
    json_accept = {"HTTP_ACCEPT": "application/json"}

    passwordless = [
        challenge_of(HttpClient().post("/login/passkey/options", **json_accept)) for _ in range(2)
    ]
    enrolment = challenge_of(
        signed_in(ada).post("/account/security/passkeys/options", **json_accept)
    )
    second_factor_browser = HttpClient()
    second_factor_browser.get("/login")
    asked = second_factor_browser.post("/login", {"email": "ada@example.com", "password": PASSWORD})
    assert asked["Location"].startswith("/login/second-factor")
    second_factor = challenge_of(
        second_factor_browser.post("/login/second-factor/webauthn/options", **json_accept)
    )

    challenges = [*passwordless, enrolment, second_factor]
    assert [len(challenge) for challenge in challenges] == [CHALLENGE_BYTES] * 4
    assert len(set(challenges)) == 4  # a fresh one each time


# --- RFC 9700 §2.1 (e) and §2.6 (f) -------------------------------------------------------


def test_authorize_and_sign_in_redirect_with_302_never_307(rp: RegisteredClient) -> None:
    # RFC 9700 §2.1 (e) / §4.12: a 307 would make the browser POST the person's credentials
    # on to the client; every redirect of the authorize and sign-in journey is a 302.
    ada = new_ada()
    consent_grant(
        user_id=ada.pk, client=Client.objects.get(client_id=rp.client_id),
        scopes=["openid", "profile", "email"],
    )  # fmt: skip
    browser = HttpClient()
    params = authorize_params(rp.client_id, new_pkce())
    statuses = {}

    to_login = browser.get(AUTHORIZE, params)
    statuses["authorize → sign-in"] = to_login.status_code
    browser.get(to_login["Location"])
    signed = browser.post(to_login["Location"], {"email": "ada@example.com", "password": PASSWORD})
    statuses["sign-in POST → authorize"] = signed.status_code
    back = browser.get(signed["Location"])
    statuses["authorize → client"] = back.status_code
    assert back["Location"].startswith(REDIRECT_URI)
    statuses["authorize POST → client"] = Flow(browser, rp).authorize(method="post").status_code
    statuses["authorize error → client"] = (
        Flow(browser, rp).authorize(scope="openid nope").status_code
    )
    hint = Flow(browser, rp).tokens()["id_token"]
    signed_out = browser.post(
        "/oauth/logout", {"id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_URI}
    )
    statuses["sign-out POST → client"] = signed_out.status_code

    assert set(statuses.values()) == {302}, statuses


def test_no_view_answers_307() -> None:
    # The journey above covers what a test can drive; this covers every other redirect.
    sources = [path for path in (ROOT / "apps").rglob("*.py") if "migrations" not in path.parts]
    answering_307 = [
        str(path.relative_to(ROOT))
        for path in sources
        if re.search(r"\b307\b|TemporaryRedirect", path.read_text())
    ]
    assert answering_307 == []


def test_the_authorization_endpoint_sends_no_cors_header(rp: RegisteredClient) -> None:
    # RFC 9700 §2.6 (f): the authorization endpoint is for top-level navigation only: no
    # Access-Control-Allow-* header on its answers or on a preflight, for any origin.
    http = HttpClient(HTTP_ORIGIN="https://attacker.example")
    answers = {
        "redirect": http.get(AUTHORIZE, authorize_params(rp.client_id, new_pkce())),
        "error": http.get(AUTHORIZE, {"client_id": "nobody"}),
        "POST": http.post(AUTHORIZE, authorize_params(rp.client_id, new_pkce())),
        "preflight": http.options(
            AUTHORIZE,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
        ),
    }
    for name, answer in answers.items():
        cors = [header for header in answer.headers if header.lower().startswith("access-control-")]
        assert cors == [], name
    # The same request to the discovery document, which is public, does get one.
    assert http.get("/.well-known/openid-configuration")["Access-Control-Allow-Origin"] == "*"


# --- RFC 9700 §2.6 (d): no http redirect URI unless allowed --------------------------------


@pytest.fixture
def https_only(settings: Any) -> None:
    """IDP_ALLOW_HTTP_REDIRECT_URIS off (production's default): what idp/settings.py makes."""
    settings.ALLOW_HTTP_REDIRECT_URIS = False
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
        "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    }


HTTP_REDIRECT = "http://rp.example.com/callback"


def test_an_http_redirect_uri_is_refused_by_the_admin_api_with_http_off(https_only: None) -> None:
    admin = user_create(email="root@example.com", password=PASSWORD, staff_role="administrator")
    token = access_token(admin, "openid admin")
    before = Client.objects.count()

    answer = HttpClient().post(
        "/api/v1/clients",
        {"name": "Plain", "redirect_uris": [HTTP_REDIRECT]},
        content_type="application/json",
        headers=bearer(token),
    )

    assert answer.status_code == 400, answer.content
    assert "redirect_uris" in answer.json()
    assert Client.objects.count() == before


def test_an_http_redirect_uri_is_refused_by_the_console_with_http_off(https_only: None) -> None:
    admin = user_create(email="root@example.com", password=PASSWORD, staff_role="administrator")
    http = HttpClient(enforce_csrf_checks=True)
    force_sign_in(http, admin)
    form = http.get("/console/clients/register/")

    answer = http.post(
        "/console/clients/register/",
        {
            "csrfmiddlewaretoken": csrf_token(form.content),
            "name": "Plain",
            "redirect_uris": HTTP_REDIRECT,
            "grant_types": ["authorization_code"],
            "id_token_alg": "RS256",
            "require_pkce": "on",
        },
    )

    assert answer.status_code == 400, answer.status_code
    assert HTTP_REDIRECT in answer.content.decode()
    assert not Client.objects.filter(name="Plain").exists()


# --- ASVS 6.2.10, 6.3.2, 6.4.2: things that must not exist --------------------------------


def test_an_old_password_still_signs_in_with_no_change_asked() -> None:
    # ASVS 6.2.10 (NIST SP 800-63B §5.1.1.2): no periodic rotation; a password set years ago
    # signs in like a new one, with no detour to a change page, and no setting could make it
    # expire.
    ada = new_ada()
    User.objects.filter(pk=ada.pk).update(
        date_joined=ada.date_joined.replace(year=ada.date_joined.year - 5)
    )
    http = HttpClient()
    http.get("/login")

    answer = http.post("/login", {"email": "ada@example.com", "password": PASSWORD})

    assert answer.status_code == 302
    assert urlsplit(answer["Location"]).path not in ("/account/", "/account/password")
    assert "tessera_sid" in http.session
    expiring = [
        name for name in dir(django_settings) if "PASSWORD" in name and re.search("EXPIR|AGE", name)
    ]
    assert expiring == []


@pytest.mark.parametrize(
    ("email", "password"),
    [("admin@example.com", "admin"), ("root@localhost", "root"), ("admin", "password")],
)
def test_a_fresh_database_has_no_account_and_no_default_credentials_sign_in(
    email: str, password: str
) -> None:
    # ASVS 6.3.2: no default account: the migrations create no person (createuser makes the
    # first one), so no well-known pair signs in.
    assert not User.objects.exists()
    http = HttpClient()
    http.get("/login")

    answer = http.post("/login", {"email": email, "password": password})

    assert answer.status_code != 302
    assert "tessera_sid" not in http.session


def test_no_model_keeps_a_secret_question() -> None:
    # ASVS 6.4.2: no knowledge-based authentication: no stored question or answer, and the
    # recovery pages ask an address, not a question.
    fields = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if re.search(r"question|answer|hint|kba", field.name)
    ]
    assert fields == []
    for path in ("/password/forgot", "/login"):
        page = parsed(HttpClient().get(path))
        names = {field.get("name", "") for field in page.inputs}
        assert not {name for name in names if re.search("question|answer", name)}, path
