"""after_commit: work queued for after a commit never fails the request that committed — also
when the queued call raises (a broker outage) — and the failure is logged under its name.
queue_after_commit: a Celery task the broker refuses is one WARNING line, no traceback."""

from __future__ import annotations

import logging
from functools import partial

import pytest
from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from apps.core.commit import after_commit, queue_after_commit, unqueued_tasks

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


# --- queue_after_commit: a Celery task --------------------------------------------------------


def refused(*args: object, **kwargs: object) -> None:
    """What kombu raises when the broker cannot be reached (tests/faults/test_broker_down.py
    has the real broker refuse and freeze)."""
    raise KombuOperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


def test_a_task_the_broker_refuses_is_one_warning_line_and_listed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(current_app, "send_task", refused)
    with caplog.at_level(logging.WARNING), unqueued_tasks() as unqueued, transaction.atomic():
        queue_after_commit("apps.core.tasks.mail_deliver", {"to": "ada@example.com"})
        assert unqueued == []  # nothing is published before the commit
    assert unqueued == ["apps.core.tasks.mail_deliver"]
    [record] = caplog.records
    assert (record.name, record.levelno) == ("tessera.tasks", logging.WARNING)
    assert record.exc_info is None
    assert record.getMessage() == (
        "task apps.core.tasks.mail_deliver not queued: "
        "OperationalError: Error 111 connecting to 127.0.0.1:1. Connection refused."
    )


def test_a_task_queued_is_sent_by_name_with_its_arguments_and_no_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(current_app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    with transaction.atomic():
        queue_after_commit("apps.core.tasks.mail_deliver", {"to": "ada@example.com"}, 2)
    assert sent == [
        (("apps.core.tasks.mail_deliver",), {"args": [{"to": "ada@example.com"}, 2],
                                             "ignore_result": True}),
    ]  # fmt: skip


def test_another_failure_of_a_publish_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the broker's refusal is shortened: anything else is a bug to read in full."""

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("Object of type set is not JSON serializable")

    monkeypatch.setattr(current_app, "send_task", broken)
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"), transaction.atomic():
        queue_after_commit("apps.core.tasks.mail_deliver", {1})
    [record] = [r for r in caplog.records if r.name == "django.db.backends.base"]
    assert record.exc_info is not None
    assert record.exc_info[0] is TypeError
