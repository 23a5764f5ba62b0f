"""A person's sign-ins reach their security history (issue 14's account page) through this
process's journal and its drain thread (core.journal), the only drainer a process has: the
thread must outlive a database that refuses it at any point of its loop, the check of its
open connection (CONN_MAX_AGE) included. It once died there, and every later event of the
process stayed in the journal file, out of the audit store, until the process exited.

The refusing database is pytest-django's blocker (what made the Chromium test of the account
page lose its "Signed in" lines when the Celery worker's start, a session fixture run with the
database blocked, outlasted the thread's replay interval); in production, any error of that
check."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connections

from apps.core import journal
from apps.core.events import EventType, emit
from apps.core.models import SecurityEvent
from tests.servers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _drained_by_the_thread(user_id: str) -> None:
    """Journaled outside a transaction, moved to the outbox by the thread (no drain_now)."""
    emit(EventType.LOGIN_SUCCEEDED, user_id=user_id)
    wait_for(
        lambda: SecurityEvent.objects.filter(user_id=user_id).exists(),
        10,
        f"the drain thread did not move {user_id}'s event to the outbox",
    )


def test_the_drain_thread_outlives_a_refused_connection_check(
    django_db_blocker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The thread keeps its connection between drains (the live server sets 0), and looks
    # for dead journals often, so its loop reaches the connection check while it is idle.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 600)
    monkeypatch.setattr(journal, "REPLAY_INTERVAL", 0.05)
    _drained_by_the_thread("before-1")
    _drained_by_the_thread("before-2")  # on a connection opened under CONN_MAX_AGE=600
    live = journal._live
    assert live is not None
    assert live.thread is not None
    thread = live.thread

    with django_db_blocker.block():  # the database refuses the thread's next check
        deadline = time.monotonic() + 15
        while live.failing_since is None and thread.is_alive():
            assert time.monotonic() < deadline, "the thread never asked the database"
            time.sleep(0.005)

    assert thread.is_alive(), "the journal's drain thread died of a refused connection check"
    _drained_by_the_thread("after")  # it drains again, without anyone calling drain_now()
