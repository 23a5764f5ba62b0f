"""Audit retention: events older than AUDIT_RETENTION_DAYS are removed, whole months at a time
in ClickHouse, in bounded batches from the outbox when the outbox is the store."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from apps.audit import clickhouse_schema
from apps.core.clickhouse import get_clickhouse
from apps.core.models import SecurityEvent

# Rows per DELETE from the outbox: one short write transaction each (on SQLite a write blocks
# every other writer while it runs).
OUTBOX_DELETE_BATCH = 5000


def retention_cutoff(*, now: datetime) -> datetime:
    return now - timedelta(days=settings.AUDIT_RETENTION_DAYS)


def clickhouse_partitions_drop(*, before: datetime) -> list[str]:
    """Drops the monthly partitions (toYYYYMM(occurred_at), UTC) that end at or before
    `before`, in every events table; returns them as "table:YYYYMM". An event newer than
    `before` is never dropped: a month is kept while any day of it is within retention.

    ClickHouse 18.16 deletes a dropped partition's files only after old_parts_lifetime (8
    minutes by default); restarted before that, it brought back the parts a merge had
    replaced (seen with this suite's server). The next daily run drops them again."""
    client = get_clickhouse()
    cluster = settings.CLICKHOUSE_CLUSTER
    month = before.year * 100 + before.month
    ((database,),) = client.execute(clickhouse_schema.CURRENT_DATABASE)
    parts = clickhouse_schema.system_table("parts", cluster)
    dropped = []
    for table in clickhouse_schema.PARTITIONED_TABLES:
        # On a cluster the partitions are the shards' local tables', found on every shard and
        # dropped ON CLUSTER.
        local = clickhouse_schema.local_table(table, cluster)
        rows = client.execute(
            clickhouse_schema.PARTITIONS_BEFORE.format(parts=parts),
            {"database": database, "table": local, "month": month},
        )
        for (partition_id,) in rows:
            client.execute(
                clickhouse_schema.DROP_PARTITION.format(
                    table=local,
                    on_cluster=clickhouse_schema.on_cluster(cluster),
                    partition_id=partition_id,
                )
            )
            dropped.append(f"{table}:{partition_id}")
    return dropped


def outbox_rows_delete(*, before: datetime) -> int:
    """Deletes outbox events that occurred before `before`, oldest first, OUTBOX_DELETE_BATCH
    at a time; returns how many."""
    deleted = 0
    while True:
        with transaction.atomic():
            batch = SecurityEvent.objects.filter(occurred_at__lt=before).order_by("occurred_at")
            count, _ = SecurityEvent.objects.filter(
                pk__in=batch.values("pk")[:OUTBOX_DELETE_BATCH]
            ).delete()
        deleted += count
        if count < OUTBOX_DELETE_BATCH:
            return deleted
