"""ClickHouse client over the native protocol, one per thread (clients are not thread-safe)."""

from __future__ import annotations

import threading

from clickhouse_driver import Client
from clickhouse_driver import errors as clickhouse_errors
from django.conf import settings

# What ClickHouse being unreachable or refusing looks like through clickhouse-driver: its own
# errors, and the socket's when the driver lets them through.
CLICKHOUSE_FAILURES = (clickhouse_errors.Error, OSError, EOFError)

_local = threading.local()

# With IDP_CLICKHOUSE_CLUSTER the audit tables are Distributed tables over one table per shard
# (apps/audit/clickhouse_schema.py), and every connection carries these settings:
# - insert_distributed_sync: an INSERT returns once every shard has written its rows, so the
#   shipper deletes from the outbox only what the shards hold; without it the INSERT returns
#   when the rows are queued on the receiving server's disk, and losing that server loses
#   events the outbox no longer has (README "ClickHouse cluster").
# - prefer_localhost_replica=0: the receiving server reads its own shard through a connection
#   like the others'. ClickHouse 18.16 fails a Distributed SELECT ... FINAL ORDER BY a column
#   other than the sorting key's first when it reads its own shard in process ("Cannot find
#   column user_id in source stream"); current versions work either way.
CLUSTER_SETTINGS = {"insert_distributed_sync": 1, "prefer_localhost_replica": 0}


def get_clickhouse() -> Client:
    """The thread's client for CLICKHOUSE_URL; it connects lazily and reconnects after errors."""
    if settings.CLICKHOUSE_URL is None:
        raise RuntimeError("CLICKHOUSE_URL is not set: audit events stay in the database")
    client: Client | None = getattr(_local, "client", None)
    target = (settings.CLICKHOUSE_URL, settings.CLICKHOUSE_CLUSTER)
    if client is None or getattr(_local, "target", None) != target:
        client = new_clickhouse()
        _local.client, _local.target = client, target
    return client


def new_clickhouse() -> Client:
    """A client of its own, for a caller that needs a second connection beside the thread's
    (a write while a read streams); same timeouts. The caller disconnects it."""
    timeout = settings.HEALTH_CHECK_TIMEOUT
    client = Client.from_url(settings.CLICKHOUSE_URL)
    client.connection.connect_timeout = timeout
    client.connection.send_receive_timeout = max(timeout, 30)
    if settings.CLICKHOUSE_CLUSTER:
        client.settings.update(CLUSTER_SETTINGS)
    return client
