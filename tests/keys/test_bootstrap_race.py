"""The lazy key bootstrap inside a request's transaction (apps/keys/keys.py `_bootstrap`):
while another process holds its new keys uncommitted, a bootstrap waits at most
BOOTSTRAP_LOCK_WAIT and fails (a 503 for its request) instead of waiting for ever behind a
process-wide lock — the web tier froze that way (benchmarks/scale_out.py
--lazy-key-bootstrap); once the other commits, the next load reads its keys."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.db import OperationalError, connection, transaction

from apps.keys import keys
from apps.keys.models import SigningKey

# The suite runs on PostgreSQL (tests/servers.py), whose lock_timeout is the bound tested here.
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_bootstrap_behind_uncommitted_keys_gives_up_then_reads_them(caplog) -> None:
    inserted, release = threading.Event(), threading.Event()

    def other_process() -> None:  # another server's request, bootstrapping first
        try:
            with transaction.atomic():
                keys.keys_rotate()
                inserted.set()
                release.wait(60)
        finally:
            connection.close()

    holder = threading.Thread(target=other_process)
    holder.start()
    try:
        assert inserted.wait(60), "the other bootstrap did not insert its keys"
        keys.keys_cache_clear()
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="tessera.cache"):
            try:
                with transaction.atomic():  # a request's transaction
                    keys.jwks()
                gave_up = any(
                    "lock timeout" in r.getMessage() + str(r.exc_info) for r in caplog.records
                )
            except OperationalError as error:  # no earlier snapshot to serve: a 503
                gave_up = "lock timeout" in str(error)
        waited = time.monotonic() - started
        assert gave_up, "the bootstrap did not stop waiting at its lock timeout"
        # Not for ever: about the bound (generous slack for a loaded machine).
        assert waited < keys.BOOTSTRAP_LOCK_WAIT + 20, waited
        with connection.cursor() as cursor:  # the request's setting did not outlive it
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "0"
    finally:
        release.set()
        holder.join(60)
    keys.keys_cache_clear()
    with transaction.atomic():
        published = keys.jwks()["keys"]
    assert {key["kid"] for key in published} == set(
        SigningKey.objects.values_list("kid", flat=True)
    )
    assert SigningKey.objects.count() == len(keys.ALGORITHMS)  # the other's keys, no second set


def test_the_bound_is_lifted_for_the_rest_of_the_request() -> None:
    keys.keys_cache_clear()
    with transaction.atomic():
        keys.jwks()  # bootstraps inside the transaction
        with connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "0"
