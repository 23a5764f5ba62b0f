"""The successful sign-ins audit gives threat's baselines (core.signin_history port,
audit.selectors.past_sign_ins): each person's login.succeeded events in turn, oldest first,
with what their metadata says, from the store a deployment reads (the outbox, or ClickHouse
merged with it)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.audit.store import pseudonym
from apps.core.signin_history import PastSignIn, SignInHistoryUnavailable, past_sign_ins
from tests.audit.factories import T0, audit_event, outbox_insert, ship_all

pytestmark = pytest.mark.django_db

ADA, BOB = "0b6f3f0e-6a2c-4d8e-9c41-2f1f8f1b0a11", "7d1c2a55-0f4e-4b8a-a3b2-5e6f7a8b9c0d"


def login(seconds: float, user: str, **fields: object):
    return audit_event(seconds, event_type="login.succeeded", user_id=user, **fields)


@pytest.mark.parametrize("store", ["database", "clickhouse"])
def test_each_persons_sign_ins_in_turn_with_what_their_events_say(
    store, settings, empty_audit_store
) -> None:
    events = [
        login(3, BOB, ip_address="198.51.100.7", metadata={"device_id": "phone"}),
        login(1, ADA, ip_address="2001:db8::1", metadata={"country": "IS", "asn": 44925}),
        login(2, BOB, user_agent="curl/8.5.0"),  # no device cookie, no address
        login(0, ADA, metadata={"device_id": 7, "country": ["IS"], "asn": True}),  # malformed
        login(4, pseudonym(ADA)),  # an erased person's: no one's any more
        audit_event(5, event_type="login.failed", user_id=ADA, success=False),
        audit_event(6, event_type="token.issued", user_id=BOB),
        login(-3600, BOB),  # before the window
    ]
    if store == "database":
        settings.CLICKHOUSE_URL = None
        outbox_insert(events)
    else:
        outbox_insert(events[:4])
        ship_all()
        outbox_insert(events[4:])

    found = list(past_sign_ins(since=T0 - timedelta(seconds=1)))

    at = [T0 + timedelta(seconds=s) for s in range(4)]
    assert found == [
        PastSignIn(ADA, at[0], "", "Mozilla/5.0", "", None, None),
        PastSignIn(ADA, at[1], "2001:db8::1", "Mozilla/5.0", "", "IS", 44925),
        PastSignIn(BOB, at[2], "", "curl/8.5.0", ""),
        PastSignIn(BOB, at[3], "198.51.100.7", "Mozilla/5.0", "phone"),
    ]


def test_an_audit_store_that_does_not_answer_says_so(servers, empty_audit_store) -> None:
    servers.clickhouse.stop()
    try:
        with pytest.raises(SignInHistoryUnavailable, match="ClickHouse"):
            list(past_sign_ins(since=T0))
    finally:
        servers.clickhouse.start()
