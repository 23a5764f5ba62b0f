"""What threat detection holds about a person (apps/threat/privacy.py) in their GDPR export
(Art. 15, 20) and gone after their erasure (Art. 17): real sign-ins through the hosted page
learn the baseline in the suite's Redis, the export and erasure run through apps/audit/gdpr.py
as an operator's would."""

from __future__ import annotations

import json

import pytest
from django.test import Client as HttpClient

from apps.accounts.services import user_create
from apps.audit.gdpr import ErasureUnavailable, subject_export, user_erase
from apps.threat.history import PREFIX, baseline_key, person_key
from tests.conftest import redis_start_again
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

HOME_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.66"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def operator(db):
    return user_create(email="ops@example.com", password=PASSWORD, staff_role="administrator")


def sign_in(email: str, password: str, ip: str) -> int:
    browser = HttpClient(REMOTE_ADDR=ip, HTTP_USER_AGENT=FIREFOX)
    browser.get("/login")  # the device cookie
    return browser.post("/login", {"email": email, "password": password}).status_code


@pytest.fixture
def ada(person, operator, empty_audit_store):
    """Ada signed in twice from home; someone guessed her password from elsewhere."""
    assert sign_in("ada@example.com", PASSWORD, HOME_IP) == 302
    assert sign_in("ada@example.com", PASSWORD, HOME_IP) == 302
    assert sign_in("ADA@example.com", "a guess", ATTACKER_IP) == 400
    return person


def test_export_holds_her_baseline_and_recent_attempts(ada, operator) -> None:
    document = json.loads("".join(subject_export(user=ada, actor_id=operator.pk)))

    threat = document["threat"]
    baseline = threat["baseline"]
    assert baseline["sign_ins_learned"] == 2
    assert baseline["networks"] == [{"network": "198.51.100.0/24", "sign_ins": 2}]
    assert baseline["browsers"] == [{"browser": "Firefox", "sign_ins": 2}]
    assert baseline["operating_systems"] == [{"os": "Linux", "sign_ins": 2}]
    # Each sign-in above came from a new browser, with a device cookie of its own.
    assert [device["sign_ins"] for device in baseline["devices"]] == [1, 1]
    assert sum(baseline["sign_ins_by_utc_hour"]) == 2
    assert baseline["last_sign_in"]["at"] is not None
    assert baseline["kept_until"] > baseline["last_sign_in"]["at"]
    assert len(threat["recent_failed_sign_ins"]) == 1
    tried = {a["ip_address"] for a in threat["addresses_that_tried_recently"]}
    assert tried == {HOME_IP, ATTACKER_IP}


def test_export_of_a_person_threat_detection_never_saw(operator, empty_audit_store) -> None:
    bob = user_create(email="bob@example.com", password=PASSWORD)

    document = json.loads("".join(subject_export(user=bob, actor_id=operator.pk)))

    assert document["threat"] == {
        "baseline": None,
        "recent_failed_sign_ins": [],
        "addresses_that_tried_recently": [],
    }


def test_erasure_leaves_nothing_of_hers_in_threat_state(ada, operator, redis_client) -> None:
    person = person_key("ada@example.com").encode()
    bob = user_create(email="bob@example.com", password=PASSWORD)
    assert sign_in("bob@example.com", PASSWORD, HOME_IP) == 302  # from her address too
    assert redis_client.exists(baseline_key(ada.pk))

    user_erase(user=ada, actor_id=operator.pk)

    keys = redis_client.keys(f"{PREFIX}*")
    assert not [k for k in keys if str(ada.pk).encode() in k or person in k]
    for key in keys:
        if redis_client.type(key) == b"zset":
            assert person not in redis_client.zrange(key, 0, -1), key
    assert redis_client.exists(baseline_key(bob.pk))  # Bob's is his own
    assert person_key("bob@example.com").encode() in redis_client.zrange(
        f"{PREFIX}acc:ip:{HOME_IP}", 0, -1
    )


def test_erasure_with_redis_down_stops_before_the_account_changes(
    servers, ada, operator, redis_client
) -> None:
    servers.redis.stop()
    try:
        # Said as such (the console and the API answer 503), never a 500, never half done.
        with pytest.raises(ErasureUnavailable, match="erase again once it is back"):
            user_erase(user=ada, actor_id=operator.pk)
    finally:
        redis_start_again(servers)

    ada.refresh_from_db()
    assert (ada.email, ada.is_active) == ("ada@example.com", True)
