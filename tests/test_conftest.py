"""The suite's own machinery (tests/conftest.py) where it decides what a failure is."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from tests.conftest import DEADLOCK_DETECTED, _flush_retried_after_a_deadlock


class _DatabaseError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _flush_failing(*sqlstates: str) -> tuple[Any, list[int]]:
    """A teardown that fails as Django's flush does (CommandError from Django's error from the
    driver's), once per given SQLSTATE, then succeeds."""
    calls: list[int] = []

    def teardown(self: object) -> None:
        calls.append(1)
        if len(calls) <= len(sqlstates):
            driver = _DatabaseError(sqlstates[len(calls) - 1])
            try:
                try:
                    raise driver
                except _DatabaseError as exc:
                    raise RuntimeError("django's OperationalError") from exc
            except RuntimeError as exc:
                raise CommandError("Database test_tessera couldn't be flushed.") from exc

    return teardown, calls


def test_a_flush_chosen_as_a_deadlock_victim_is_run_again() -> None:
    teardown, calls = _flush_failing(DEADLOCK_DETECTED, DEADLOCK_DETECTED)

    _flush_retried_after_a_deadlock(teardown)(object())

    assert len(calls) == 3


def test_any_other_flush_failure_is_raised_at_once() -> None:
    teardown, calls = _flush_failing("42P01")  # undefined_table

    with pytest.raises(CommandError):
        _flush_retried_after_a_deadlock(teardown)(object())
    assert len(calls) == 1


def test_a_flush_that_keeps_deadlocking_fails_after_five_tries() -> None:
    teardown, calls = _flush_failing(*[DEADLOCK_DETECTED] * 6)

    with pytest.raises(CommandError):
        _flush_retried_after_a_deadlock(teardown)(object())
    assert len(calls) == 5
