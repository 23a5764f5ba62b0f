"""A person's GDPR rights (apps/audit/gdpr.py) against the suite's real PostgreSQL and
ClickHouse: the export holds everything kept about them (Art. 15, 20); erasure (Art. 17)
leaves no trace of their id, email or IP addresses in either store, while the counts per
event type and per (pseudonymous) person stay what they were."""

from __future__ import annotations

import ipaddress
import json
from collections import Counter

import pyotp
import pytest
from clickhouse_driver import Client
from django.test import Client as HttpClient
from django.test import override_settings

from apps.accounts.services import user_create
from apps.audit.clickhouse_schema import PARTITIONED_TABLES
from apps.audit.gdpr import ErasureRefused, subject_export, user_erase
from apps.audit.store import EventFilters, StoreUnavailable, audit_store, pseudonym
from apps.audit.store.base import ip_pseudonym
from apps.core.events import EventType, emit
from apps.core.models import SecurityEvent
from apps.mfa.models import RecoveryCodeSet, TotpDevice
from apps.mfa.recovery import recovery_codes_generate
from apps.mfa.totp import totp_confirm, totp_enrol, totp_secret
from apps.sessions.models import LoginSession
from apps.sessions.services import session_client_record
from apps.tokens.models import Client as OAuthClient
from apps.tokens.models import Consent, OfflineGrant
from apps.tokens.services import consent_grant
from tests.accounts.factories import (
    GroupMembershipFactory,
    OrganizationMembershipFactory,
    WorkspaceMembershipFactory,
)
from tests.audit.factories import audit_event, outbox_insert, ship_all
from tests.console.conftest import offline_grant
from tests.rp import PASSWORD, RegisteredClient
from tests.tokens.conftest import TOKEN, form_post, userinfo

pytestmark = pytest.mark.django_db

HOME_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.66"
PHONE_IP = "2001:67c:2e8:22::c100:68b"
BOB_IP = "192.0.2.200"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def operator(db):
    return user_create(email="ops@example.com", password=PASSWORD, staff_role="administrator")


def sign_in(email: str, password: str, ip: str) -> int:
    browser = HttpClient(REMOTE_ADDR=ip, HTTP_USER_AGENT=FIREFOX)
    browser.get("/login")  # the device cookie
    return browser.post("/login", {"email": email, "password": password}).status_code


@pytest.fixture
def ada(person, rp: RegisteredClient, operator, empty_audit_store: Client):
    """Ada, known everywhere: memberships, a live session from home with a client in it, a
    consent, a failed sign-in with her address from elsewhere, an operator's look at her
    account; most of it shipped to ClickHouse, the newest still in the outbox. Bob signs in
    beside her."""
    for factory in (OrganizationMembershipFactory, WorkspaceMembershipFactory):
        factory(user=person)
    GroupMembershipFactory(user=person)
    assert sign_in("ada@example.com", PASSWORD, HOME_IP) == 302
    session = LoginSession.objects.get(user=person)
    session_client_record(session=session, client_id=rp.client_id)
    client = OAuthClient.objects.get(client_id=rp.client_id)
    consent_grant(user_id=person.pk, client=client, scopes=["openid", "email"])
    assert sign_in("ADA@Example.com", "a guess", ATTACKER_IP) == 400  # user_id unknown
    emit(
        EventType.OPERATOR_VIEWED_USER,
        user_id=person.pk,
        actor_id=operator.pk,
        resource_type="user",
        resource_id=person.pk,
        metadata={"path": f"/console/users/{person.pk}/"},
    )
    bob = user_create(email="bob@example.com", password=PASSWORD)
    assert sign_in("bob@example.com", PASSWORD, BOB_IP) == 302
    # A second factor, added after her sign-in (mfa.enrolled for the app and the codes).
    device = totp_enrol(user=person, name="Phone").device
    totp_confirm(device=device, code=pyotp.TOTP(totp_secret(device)).now())
    person.totp_secret = totp_secret(device)
    recovery_codes_generate(user=person)
    ship_all()
    unshipped = audit_event(
        event_type="login.failed", user_id=str(person.pk), ip_address=PHONE_IP, success=False
    )
    outbox_insert([unshipped])
    assert SecurityEvent.objects.count() == 1
    person.bob = bob
    return person


def by_type() -> Counter[str]:
    return Counter(event.event_type for event in audit_store().iterate(EventFilters()))


def traces(clickhouse: Client) -> str:
    """Every audit row in both stores, as text: the outbox and each ClickHouse table, every
    part (no FINAL: a row hidden by a merge to come still counts)."""
    rows = [str(row) for row in SecurityEvent.objects.values_list()]
    for table in PARTITIONED_TABLES:
        rows += [str(row) for row in clickhouse.execute(f"SELECT * FROM {table}")]  # noqa: S608
    return "\n".join(rows).lower()


def test_export_holds_everything_kept_about_the_person(ada, rp, operator) -> None:
    chunks = subject_export(user=ada, actor_id=operator.pk)

    assert not isinstance(chunks, str | bytes | list)  # streamed, not built in memory
    document = json.loads("".join(chunks))
    assert document["format"] == "tessera.subject-export.v1"
    assert document["account"]["email"] == "ada@example.com"
    assert document["account"]["name"] == "Ada Lovelace"
    assert len(document["organizations"]) == len(document["workspaces"]) == 1
    assert len(document["groups"]) == 1
    [session] = document["sessions"]
    assert (session["ip_address"], session["user_agent"]) == (HOME_IP, FIREFOX)
    assert session["clients"] == [rp.client_id]
    [consent] = document["consents"]
    assert (consent["client_id"], consent["scopes"]) == (rp.client_id, ["email", "openid"])
    assert document["clients"] == [{"client_id": rp.client_id, "name": "Example RP"}]
    factors = document["second_factors"]  # named, never a secret or a code
    assert [(f["kind"], f["name"]) for f in factors] == [
        ("totp", "Phone"),
        ("recovery_codes", "Recovery codes"),
    ]
    assert factors[1]["recovery_codes_remaining"] == 10
    assert ada.totp_secret not in json.dumps(document)
    events = document["events"]
    assert Counter(e["event_type"] for e in events) == {
        "user.created": 1,
        "login.succeeded": 1,
        "consent.granted": 1,
        "login.failed": 2,  # with her address (no user id), and the one not shipped yet
        "threat.assessed": 2,  # her sign-in and the wrong password, each scored
        "operator.viewed_user": 1,
        "mfa.enrolled": 2,
    }
    assert {e["ip_address"] for e in events} >= {HOME_IP, ATTACKER_IP, PHONE_IP}
    assert "bob@example.com" not in json.dumps(document)
    [recorded] = SecurityEvent.objects.filter(event_type="gdpr.exported")
    assert (recorded.user_id, recorded.actor_id) == (str(ada.pk), str(operator.pk))


def test_erasure_leaves_no_trace_and_keeps_the_counts(ada, operator, empty_audit_store) -> None:
    types_before = by_type()
    hers_before = sum(1 for _ in audit_store().iterate(EventFilters(user_id=str(ada.pk))))
    bobs_before = list(audit_store().iterate(EventFilters(user_id=str(ada.bob.pk))))

    alias = user_erase(user=ada, actor_id=operator.pk)

    assert alias == pseudonym(str(ada.pk))
    # Her live session ended (session.revoked) and the erasure is on record (gdpr.erased).
    assert by_type() == types_before + Counter({"session.revoked": 1, "gdpr.erased": 1})
    hers_after = list(audit_store().iterate(EventFilters(user_id=alias)))
    assert len(hers_after) == hers_before + 2
    assert {e.ip_address for e in hers_after} >= {ip_pseudonym(HOME_IP), ip_pseudonym(PHONE_IP)}
    documentation = ipaddress.ip_network("2001:db8::/32")  # RFC 3849
    assert all(
        ipaddress.ip_address(e.ip_address) in documentation for e in hers_after if e.ip_address
    )
    assert list(audit_store().iterate(EventFilters(user_id=str(ada.bob.pk)))) == bobs_before
    text = traces(empty_audit_store)
    for trace in (str(ada.pk), "ada@example.com", HOME_IP, ATTACKER_IP, PHONE_IP):
        assert trace not in text
    assert str(ada.bob.pk) in text  # Bob's events are his own
    assert BOB_IP in text
    [erased] = SecurityEvent.objects.filter(event_type="gdpr.erased")
    assert (erased.user_id, erased.actor_id, erased.severity) == (alias, str(operator.pk), "high")


def test_erased_account_holds_nothing_and_cannot_sign_in(ada, operator) -> None:
    user_erase(user=ada, actor_id=operator.pk)

    ada.refresh_from_db()
    assert ada.email == f"{pseudonym(str(ada.pk))[5:]}@erased.invalid"
    assert (ada.name, ada.is_active, ada.is_staff, ada.last_login) == ("", False, False, None)
    assert not ada.has_usable_password()
    [session] = LoginSession.objects.filter(user=ada)
    assert session.ended_at is not None
    assert (session.ip_address, session.user_agent, session.device_id, session.context) == (
        None, "", "", {},
    )  # fmt: skip
    assert not Consent.objects.filter(user=ada).exists()
    for relation in ("organization_memberships", "workspace_memberships", "group_memberships"):
        assert not getattr(ada, relation).exists()
    assert sign_in("ada@example.com", PASSWORD, HOME_IP) == 400
    assert not TotpDevice.objects.filter(user=ada).exists()
    assert not RecoveryCodeSet.objects.filter(user=ada).exists()


def test_offline_grants_are_exported_and_end_with_the_erasure(ada, operator) -> None:
    # Art. 15: the offline access she gave is hers to see; Art. 17: once erased, no client
    # keeps refreshing tokens for her (OIDC Core §11)
    mail = offline_grant(ada, name="Mail app")

    document = json.loads("".join(subject_export(user=ada, actor_id=operator.pk)))
    user_erase(user=ada, actor_id=operator.pk)

    [exported] = document["offline_grants"]
    assert exported["id"] == str(mail.grant.pk)
    assert exported["client_id"] == mail.rp.client_id
    assert exported["scopes"] == ["openid", "email", "offline_access"]
    assert exported["session_id"] == str(mail.grant.session_id)
    assert (exported["revoked_at"], exported["revoke_reason"]) == (None, "")
    assert exported["created_at"] < exported["expires_at"]
    grant = OfflineGrant.objects.get(pk=mail.grant.pk)
    assert (grant.revoked_at is not None, grant.revoke_reason) == (True, "erased")
    data = {"grant_type": "refresh_token", "refresh_token": mail.refresh_token}
    refused = form_post(HttpClient(), TOKEN, data, auth=mail.rp)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert userinfo(HttpClient(), mail.access_token).status_code == 401
    [revoked] = SecurityEvent.objects.filter(event_type="offline_access.revoked")
    assert (revoked.user_id, revoked.actor_id) == (pseudonym(str(ada.pk)), str(operator.pk))


def test_a_second_erasure_finds_nothing_left(ada, operator) -> None:
    alias = user_erase(user=ada, actor_id=operator.pk)
    before = by_type()

    assert user_erase(user=ada, actor_id=operator.pk) == alias

    assert by_type() == before + Counter({"gdpr.erased": 1})


def test_operators_cannot_erase_themselves(operator, empty_audit_store) -> None:
    with pytest.raises(ErasureRefused, match="cannot erase their own account"):
        user_erase(user=operator, actor_id=operator.pk)

    operator.refresh_from_db()
    assert operator.is_active


def test_clickhouse_down_stops_an_erasure_before_the_account_changes(
    servers, ada, operator, empty_audit_store
) -> None:
    servers.clickhouse.stop()
    try:
        with pytest.raises(StoreUnavailable):
            user_erase(user=ada, actor_id=operator.pk)
    finally:
        servers.clickhouse.start()

    ada.refresh_from_db()
    assert (ada.email, ada.is_active) == ("ada@example.com", True)
    user_erase(user=ada, actor_id=operator.pk)  # once it is back, erasing again finishes
    assert str(ada.pk) not in traces(empty_audit_store)


def test_pseudonyms_are_keyed_and_stable() -> None:
    # GDPR Art. 4(5): without the key (SECRET_KEY) a pseudonym cannot be tied to the person.
    ours = pseudonym("u1")
    assert ours == pseudonym("u1") != pseudonym("u2")
    assert ours.startswith("anon:")
    assert len(ours) == len("anon:") + 32  # 128 bits
    assert ip_pseudonym("198.51.100.7") == ip_pseudonym("198.51.100.7") != ip_pseudonym(BOB_IP)
    assert ip_pseudonym(ip_pseudonym(BOB_IP)) == ip_pseudonym(BOB_IP)  # already one
    with override_settings(SECRET_KEY="another key " * 5):
        assert pseudonym("u1") != ours
