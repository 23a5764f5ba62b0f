"""after_commit: work queued for after a commit never fails the request that committed — also
when the queued call raises (a broker outage) — and the failure is logged under its name."""

from __future__ import annotations

import logging
from functools import partial

import pytest
from django.db import transaction

from apps.core.commit import after_commit

pytestmark = pytest.mark.django_db(transaction=True)


class BrokerDown(Exception):
    pass


def deliver(delivery_id: int, *, queue: str) -> None:
    raise BrokerDown(f"cannot queue {delivery_id} on {queue}")


def test_a_failing_call_after_commit_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"), transaction.atomic():
        after_commit(deliver, 7, queue="logout")
    [record] = [r for r in caplog.records if "on_commit" in r.getMessage()]
    assert "deliver" in record.getMessage()
    assert "cannot queue 7 on logout" in record.getMessage()


def test_a_partial_failing_after_commit_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Django names the callback by __qualname__, which a functools.partial lacks: handed to
    on_commit directly, its failure escaped as AttributeError after the commit."""
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"), transaction.atomic():
        after_commit(partial(deliver, 8, queue="logout"))
    assert any("cannot queue 8" in r.getMessage() for r in caplog.records)


def test_outside_a_transaction_it_runs_at_once() -> None:
    seen: list[int] = []
    after_commit(seen.append, 3)
    assert seen == [3]
