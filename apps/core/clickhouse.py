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


def get_clickhouse() -> Client:
    """The thread's client for CLICKHOUSE_URL; it connects lazily and reconnects after errors."""
    if settings.CLICKHOUSE_URL is None:
        raise RuntimeError("CLICKHOUSE_URL is not set: audit events stay in the database")
    client: Client | None = getattr(_local, "client", None)
    if client is None or getattr(_local, "url", None) != settings.CLICKHOUSE_URL:
        client = new_clickhouse()
        _local.client, _local.url = client, settings.CLICKHOUSE_URL
    return client


def new_clickhouse() -> Client:
    """A client of its own, for a caller that needs a second connection beside the thread's
    (a write while a read streams); same timeouts. The caller disconnects it."""
    timeout = settings.HEALTH_CHECK_TIMEOUT
    client = Client.from_url(settings.CLICKHOUSE_URL)
    client.connection.connect_timeout = timeout
    client.connection.send_receive_timeout = max(timeout, 30)
    return client
