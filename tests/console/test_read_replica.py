"""DATABASE_REPLICA_URL (apps/core/replica.py): the console's session list reads a real
streaming replica of the suite's PostgreSQL, so it shows what the replica has replayed; the
sign-in path's reads stay on the primary. Pausing the replica's WAL replay stands in for lag
(docs/redis-ha.md, "Read replica")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from apps.accounts.services import user_create
from apps.core.replica import REPLICA, lagging_reads
from apps.sessions.selectors import session_page
from apps.sessions.services import session_start
from tests.pg_replica import PostgresReplica
from tests.servers import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def replica(servers, django_db_setup) -> Iterator[PostgresReplica]:
    """A streaming replica of the suite's PostgreSQL as DATABASE_REPLICA_URL would configure
    it: the alias `replica` on the test database, a mirror of `default` for the test
    machinery (nothing is created or flushed on a standby). Registered before any test of
    this module sets up, so that they may name it in `databases`."""
    began = time.monotonic()
    replica = PostgresReplica(servers.base, servers.postgres)
    replica.start()
    print(f"streaming replica: copied in {replica.copied_in:.2f}s, "
          f"serving after {time.monotonic() - began:.2f}s")  # fmt: skip
    config = {
        **settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": replica.port,
        "TEST": {**settings.DATABASES["default"]["TEST"], "MIRROR": "default"},
    }  # fmt: skip
    settings.DATABASES[REPLICA] = config  # connections.settings is this same dict
    try:
        yield replica
    finally:
        connections[REPLICA].close()
        del connections[REPLICA]
        del settings.DATABASES[REPLICA]
        replica.stop()


def _person_signed_in(email: str) -> None:
    user = user_create(email=email, password=None)
    session_start(user=user, amr=["pwd"])


def test_a_replica_needs_a_postgresql_primary(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "DATABASE_"))}
    env.update(IDP_DATA_DIR=str(tmp_path), DATABASE_REPLICA_URL="postgres://r/idp")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL" in result.stderr


@pytest.mark.django_db(transaction=True, databases=["default", REPLICA])
def test_the_console_session_list_reads_the_replica(replica, admin_client) -> None:
    database = settings.DATABASES["default"]["NAME"]
    assert lagging_reads() == REPLICA
    _person_signed_in("early@example.com")
    wait_for(lambda: replica.caught_up(database), 30, "the replica did not catch up")
    assert "early@example.com" in admin_client.get("/console/sessions/").content.decode()

    replica.replay(database, paused=True)  # the replica lags from here
    _person_signed_in("late@example.com")
    page = admin_client.get("/console/sessions/").content.decode()
    assert "early@example.com" in page
    assert "late@example.com" not in page  # not replayed yet: the page read the replica
    # Everything else reads the primary, which has it.
    assert [s.user.email for s in session_page(email="late@example.com").sessions] == [
        "late@example.com"
    ]

    replica.replay(database, paused=False)
    wait_for(lambda: replica.caught_up(database), 30, "the replica did not catch up")
    assert "late@example.com" in admin_client.get("/console/sessions/").content.decode()
