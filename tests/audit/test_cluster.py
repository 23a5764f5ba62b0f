"""The audit pipeline on a ClickHouse cluster (README "ClickHouse cluster"): two real
ClickHouse 18.16 servers, one shard each, with ZooKeeper (tests/servers.ClickHouseCluster).
`audit_migrate --cluster` makes ReplicatedReplacingMergeTree tables on both shards and
Distributed tables over them; the shipper, a real worker, and the console's reads go through
the Distributed tables unchanged, and every event is counted once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clickhouse_driver import Client
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from apps.audit import clickhouse_schema, selectors
from apps.audit.clickhouse_schema import INSERT_EVENTS, MIGRATIONS
from apps.audit.retention import clickhouse_partitions_drop
from apps.audit.store import ClickHouseStore, EventFilters, Subject
from apps.audit.tasks import apply_retention, ship_events
from apps.core import journal
from apps.core.clickhouse import get_clickhouse
from apps.core.events import EventType, emit
from apps.core.models import SecurityEvent
from tests.audit.conftest import (
    DISTINCT_IDS,
    EVENTS_FINAL,
    MIGRATIONS_RECORDED,
    ROWS,
    ROWS_FINAL,
    counts,
    emit_many,
)
from tests.conftest import WorkerProcess
from tests.servers import ClickHouseCluster

if TYPE_CHECKING:
    from tests.servers import TestServers

pytestmark = pytest.mark.clickhouse_cluster

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "audit_cluster"
QUEUE = "audit-cluster"
WAIT = 60.0
TABLES = "SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name"
ZOOKEEPER_PATHS = (
    "SELECT table, zookeeper_path, replica_name FROM system.replicas "
    "WHERE database = currentDatabase() ORDER BY table"
)
LOCAL_ROWS_FINAL = "SELECT count() FROM audit_events_local FINAL"
LOCAL_IDS = "SELECT toString(id) FROM audit_events_local"


def _url(port: int) -> str:
    return f"clickhouse://default:@127.0.0.1:{port}/{DATABASE}"


@pytest.fixture
def shards(clickhouse_cluster: ClickHouseCluster, settings) -> Iterator[list[Client]]:
    """A new, empty database on both shards, named by CLICKHOUSE_URL (the first shard's
    server) and IDP_CLICKHOUSE_CLUSTER; a client of it on each shard."""
    admin = Client("127.0.0.1", port=clickhouse_cluster.nodes[0].port)
    on_cluster = f"ON CLUSTER {ClickHouseCluster.NAME}"
    admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} {on_cluster}")
    admin.execute(f"CREATE DATABASE {DATABASE} {on_cluster}")
    settings.CLICKHOUSE_URL = _url(clickhouse_cluster.nodes[0].port)
    settings.CLICKHOUSE_CLUSTER = ClickHouseCluster.NAME
    clients = [Client.from_url(_url(node.port)) for node in clickhouse_cluster.nodes]
    yield clients
    for client in clients:
        client.disconnect()
    admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} {on_cluster}")
    admin.disconnect()


def _migrate(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_migrate", *args, stdout=out)
    return out.getvalue()


def test_audit_migrate_makes_replicated_tables_on_both_shards_and_distributed_over_them(
    shards: list[Client], clickhouse_cluster: ClickHouseCluster, settings, capsys
) -> None:
    started = time.monotonic()
    first = _migrate("--cluster", ClickHouseCluster.NAME)
    took = time.monotonic() - started

    assert first.splitlines() == [
        *(f"audit schema: applying {m.version} {m.name}" for m in MIGRATIONS),
        f"audit schema: at version {MIGRATIONS[-1].version} on cluster {ClickHouseCluster.NAME}",
    ]
    for shard, client in enumerate(shards, start=1):
        assert client.execute(TABLES) == [
            ("audit_events", "Distributed"),
            ("audit_events_by_type", "Distributed"),
            ("audit_events_by_type_local", "ReplicatedReplacingMergeTree"),
            ("audit_events_by_type_mv", "MaterializedView"),
            ("audit_events_local", "ReplicatedReplacingMergeTree"),
            ("audit_schema_migrations", "ReplicatedMergeTree"),
        ]
        # Each shard's tables under its own {shard} in ZooKeeper; the record is one table
        # replicated to every server.
        assert client.execute(ZOOKEEPER_PATHS) == [
            ("audit_events_by_type_local",
             f"/clickhouse/tables/{shard:02d}/{DATABASE}/audit_events_by_type_local", "r1"),
            ("audit_events_local",
             f"/clickhouse/tables/{shard:02d}/{DATABASE}/audit_events_local", "r1"),
            ("audit_schema_migrations",
             f"/clickhouse/tables/{DATABASE}/audit_schema_migrations", f"{shard:02d}-r1"),
        ]  # fmt: skip

    # Idempotent: again, through either server, and with the cluster from the setting alone.
    up_to_date = [
        "audit schema: up to date",
        f"audit schema: at version {MIGRATIONS[-1].version} on cluster {ClickHouseCluster.NAME}",
    ]
    assert _migrate("--cluster", ClickHouseCluster.NAME).splitlines() == up_to_date
    settings.CLICKHOUSE_URL = _url(clickhouse_cluster.nodes[1].port)
    assert _migrate().splitlines() == up_to_date
    for client in shards:  # the second server's record synced by the run through it
        assert client.execute(MIGRATIONS_RECORDED) == [(m.version, m.name) for m in MIGRATIONS]
        assert len(client.execute(TABLES)) == 6
    with capsys.disabled():
        print(f"\naudit_migrate --cluster (3 migrations, 2 shards): {took:.2f}s")


def test_audit_migrate_names_what_is_wrong_with_the_cluster(shards: list[Client], settings) -> None:
    # A cluster the servers do not define: the names they do.
    settings.CLICKHOUSE_CLUSTER = "no_such_cluster"
    with pytest.raises(CommandError) as refused:
        _migrate("--cluster", "no_such_cluster")
    assert "has no cluster 'no_such_cluster' in its remote_servers" in str(refused.value)
    assert ClickHouseCluster.NAME in str(refused.value)
    # --cluster that the setting (the shipper's and the store's) does not name.
    settings.CLICKHOUSE_CLUSTER = None
    with pytest.raises(CommandError, match="IDP_CLICKHOUSE_CLUSTER is unset"):
        _migrate("--cluster", ClickHouseCluster.NAME)
    assert shards[0].execute(TABLES) == []  # nothing was made
    # One server's schema asked for where the cluster's is, and the other way round.
    settings.CLICKHOUSE_CLUSTER = ClickHouseCluster.NAME
    _migrate()
    settings.CLICKHOUSE_CLUSTER = None
    with pytest.raises(CommandError, match="audit_events is a Distributed table"):
        _migrate()
    settings.CLICKHOUSE_CLUSTER = ClickHouseCluster.NAME
    settings.CLICKHOUSE_URL = settings.CLICKHOUSE_URL.rsplit("/", 1)[0] + "/default"
    shards[0].execute("CREATE TABLE default.audit_events (id UUID) ENGINE = Memory")
    try:
        with pytest.raises(CommandError, match="is a Memory table of one server"):
            _migrate()
    finally:
        shards[0].execute("DROP TABLE default.audit_events")


def test_a_malformed_cluster_name_stops_startup(tmp_path) -> None:
    env = {**os.environ, "IDP_CLICKHOUSE_CLUSTER": "tessera`; DROP TABLE x"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "IDP_CLICKHOUSE_CLUSTER=" in result.stderr
    assert "a remote_servers cluster name is letters" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def cluster_worker(
    servers: TestServers, shards: list[Client], django_db_setup: None
) -> Iterator[WorkerProcess]:
    """A real worker configured for the cluster, taking tasks from its own queue (the suite's
    worker, on the one-server ClickHouse, takes the default queue)."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(django_settings.DATABASES["default"]["NAME"]),
        "CLICKHOUSE_URL": django_settings.CLICKHOUSE_URL,
        "IDP_CLICKHOUSE_CLUSTER": ClickHouseCluster.NAME,
    }
    worker = WorkerProcess(env, servers.base / "celery-cluster-worker.log", "cluster", QUEUE)
    worker.start()
    yield worker
    worker.stop()


def _all_pages(filters: EventFilters) -> list[uuid.UUID]:
    """Every event the console's search finds, newest first, page after page."""
    ids, after = [], None
    while True:
        page = selectors.event_page(filters=filters, after=after, limit=70)
        ids += [event.id for event in page.events]
        if page.next_cursor is None:
            return ids
        after = page.next_cursor


@pytest.mark.django_db(transaction=True)
def test_shipped_events_arrive_once_spread_over_both_shards_and_read_through_distributed(
    shards: list[Client], cluster_worker: WorkerProcess
) -> None:
    _migrate()
    person = str(uuid.uuid4())
    emit_many(300)  # journal → outbox
    for _ in range(5):
        emit(EventType.LOGIN_SUCCEEDED, user_id=person, metadata={"method": "password"})
    journal.drain_now()
    recorded = {event.id: event.occurred_at for event in SecurityEvent.objects.all()}
    assert len(recorded) == 305

    # The shipper task, run by the real worker: one INSERT into the Distributed table.
    shipped = ship_events.apply_async(queue=QUEUE, ignore_result=False).get(timeout=WAIT)

    assert shipped == 305
    assert SecurityEvent.objects.count() == 0
    # On the shards: each event once, on one shard; both shards hold some.
    on_shard = [{uuid.UUID(i) for (i,) in client.execute(LOCAL_IDS)} for client in shards]
    assert not on_shard[0] & on_shard[1]
    assert on_shard[0] | on_shard[1] == set(recorded)
    assert all(len(ids) > 50 for ids in on_shard), [len(ids) for ids in on_shard]
    # Through the Distributed tables, from either server: rows, rows FINAL, distinct ids,
    # rows FINAL of the by-type table.
    for client in shards:
        assert counts(client) == (305, 305, 305, 305)

    # A shipper killed between its INSERT and its outbox commit ships rows again: here the
    # newest 100 of them, in a batch of their own, through the shipper's client (its cluster
    # settings: the INSERT returns once both shards wrote). They go to the shard of their first
    # copy, where FINAL counts them once.
    again = shards[0].execute(f"{EVENTS_FINAL} ORDER BY occurred_at DESC LIMIT 100")
    get_clickhouse().execute(INSERT_EVENTS, again, types_check=False)
    assert shards[0].execute(ROWS)[0][0] == 405
    assert tuple(shards[0].execute(q)[0][0] for q in (ROWS_FINAL, DISTINCT_IDS)) == (305, 305)
    assert [{uuid.UUID(i) for (i,) in c.execute(LOCAL_IDS)} for c in shards] == on_shard
    assert sum(client.execute(LOCAL_ROWS_FINAL)[0][0] for client in shards) == 305

    # The console's audit queries (apps.audit.selectors over the merged store) through the
    # Distributed tables: every event once, newest first across both shards.
    newest_first = sorted(recorded, key=lambda i: (recorded[i], str(i)), reverse=True)
    assert _all_pages(EventFilters()) == newest_first
    assert len(_all_pages(EventFilters(event_type=EventType.TOKEN_ISSUED))) == 300
    recent = selectors.events_recent_for_user(user_id=person)
    assert [event.event_type for event in recent] == [EventType.LOGIN_SUCCEEDED] * 5


@pytest.mark.django_db(transaction=True)
def test_erasure_and_retention_act_on_every_shard(shards: list[Client]) -> None:
    _migrate()
    person = str(uuid.uuid4())
    for index in range(40):
        emit(EventType.LOGIN_SUCCEEDED, user_id=person, metadata={"n": index})
    emit_many(40)  # drains the journal
    assert ship_events.apply().get() == 80
    on_shard = [client.execute(f"{LOCAL_ROWS_FINAL} WHERE user_id = %(p)s", {"p": person})
                for client in shards]  # fmt: skip
    assert all(rows[0][0] > 0 for rows in on_shard)

    # GDPR erasure through the store: the pseudonymized copies are written through the
    # Distributed table, the originals deleted on each shard (ALTER ... ON CLUSTER).
    rewritten = ClickHouseStore().pseudonymize_user(Subject(user_id=person))

    assert rewritten == 40
    for client in shards:
        assert client.execute(f"{LOCAL_ROWS_FINAL} WHERE user_id = %(p)s", {"p": person}) == [(0,)]
    assert selectors.events_recent_for_user(user_id=person) == []
    assert shards[0].execute(ROWS_FINAL)[0][0] == 80

    # Retention: every month is within it, nothing is dropped; a cutoff after this month
    # drops this month's partition on both shards.
    assert apply_retention.apply().get() == 0
    dropped = clickhouse_partitions_drop(before=datetime.now(UTC) + timedelta(days=62))
    assert sorted({name.split(":")[0] for name in dropped}) == list(
        clickhouse_schema.PARTITIONED_TABLES
    )
    for client in shards:
        assert client.execute(LOCAL_ROWS_FINAL) == [(0,)]
    assert shards[1].execute(ROWS_FINAL) == [(0,)]
