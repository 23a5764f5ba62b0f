"""A Celery worker SIGKILLed in the middle of the daily baseline rebuild (issue 20, "Faults";
apps/threat/tasks.py rebuild_baselines): each person's baseline is replaced by one script
(apps/threat/baselines.py BASELINE_WRITE), so what the killed run wrote is whole, and what it
did not reach is as it was. Nothing it left breaks the next run: a rerun on a new worker
reports every person written (the killed run's `at` is the rerun's, so none is "kept newer"),
and the baselines then equal those of a clean run from nothing.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from clickhouse_driver import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.threat.history import PREFIX
from tests.audit.factories import outbox_insert
from tests.faults.conftest import Worker
from tests.servers import Redis, wait_for

if TYPE_CHECKING:  # imported at run time, pytest would try to collect it as a test class
    from tests.servers import TestServers
from tests.threat.test_baselines import ADDRESSES, AGENTS, sign_in

REBUILD = "apps.threat.tasks.rebuild_baselines"
PEOPLE = 3000  # enough that a run takes seconds, in batches of baselines.WRITE_BATCH
PER_PERSON = 3


def _baselines(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    keys = list(client.scan_iter(match=f"{PREFIX}baseline:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def _history() -> None:
    """PEOPLE accounts with PER_PERSON sign-ins each over the last 60 days, in the outbox
    (the audit store the worker reads merges it with ClickHouse)."""
    rng = random.Random(11)  # noqa: S311 - a repeatable sample, not a secret
    people = User.objects.bulk_create(
        [User(email=f"{uuid.uuid4().hex}@example.com") for _ in range(PEOPLE)], batch_size=1000
    )
    now = timezone.now()
    outbox_insert(
        [
            sign_in(
                str(person.pk),
                now - timedelta(seconds=rng.randrange(3600, 60 * 86400)),
                rng.choice(ADDRESSES),
                rng.choice(AGENTS),
                uuid.uuid4().hex,
            )
            for person in people
            for _ in range(PER_PERSON)
        ]
    )


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_killed_midway_leaves_whole_baselines_and_a_rerun_equals_a_clean_run(
    own_redis: Redis,
    servers: TestServers,
    test_database_env: dict[str, str],
    workers: list[Worker],
    empty_audit_store: Client,
    tmp_path: Path,
) -> None:
    _history()
    app_redis = redis.Redis.from_url(servers.redis.url(0))  # where the worker keeps baselines
    broker = own_redis.url(0)
    first = Worker(test_database_env, tmp_path / "worker-1.log", broker).start()
    workers.append(first)

    first.broker.send(REBUILD)
    wait_for(
        lambda: next(app_redis.scan_iter(match=f"{PREFIX}baseline:*", count=1000), None),
        120,
        "the rebuild wrote nothing",
    )
    first.kill()
    killed = time.monotonic()
    partial = _baselines(app_redis)
    assert 0 < len(partial) < PEOPLE, "the rebuild was not killed midway"

    second = Worker(test_database_env, tmp_path / "worker-2.log", broker).start()
    workers.append(second)
    started = time.monotonic()
    rerun = second.broker.send(REBUILD).get(timeout=120)
    rerun_s = time.monotonic() - started
    assert rerun == {
        "people": PEOPLE,
        "sign_ins": PEOPLE * PER_PERSON,
        "written": PEOPLE,
        "kept_newer": 0,
        "removed": 0,
        "no_account": 0,
    }
    after_rerun = _baselines(app_redis)

    app_redis.delete(*after_rerun)
    clean = second.broker.send(REBUILD).get(timeout=120)
    assert clean == rerun
    from_nothing = _baselines(app_redis)
    assert after_rerun == from_nothing
    # what the killed run wrote was whole: each baseline as the clean run writes it
    assert {key: from_nothing[key] for key in partial} == partial
    app_redis.close()
    print(
        f"killed_after_baselines={len(partial)}/{PEOPLE} rerun_s={rerun_s:.2f} "
        f"resumed_after_kill_s={time.monotonic() - killed:.2f}"
    )
