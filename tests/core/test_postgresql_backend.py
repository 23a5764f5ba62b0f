"""apps.core.postgresql: the connection health check asks the server only when the socket
says something happened, and still catches a connection the server ended."""

from __future__ import annotations

import select

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql import base as django_postgresql

from apps.accounts.models import User
from apps.core.postgresql.base import DatabaseWrapper
from tests.servers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Counts the `SELECT 1` checks (Django's is_usable) the backend falls back to."""
    calls: list[None] = []
    ask_server = django_postgresql.DatabaseWrapper.is_usable

    def counted(self: django_postgresql.DatabaseWrapper) -> bool:
        calls.append(None)
        return bool(ask_server(self))

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", counted)
    return calls


def _other_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    return psycopg.connect(**params, autocommit=True)


def _readable(timeout: float = 0) -> bool:
    poller = select.poll()
    poller.register(connection.connection.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def test_the_suite_runs_on_this_backend() -> None:
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.health_check_enabled  # CONN_HEALTH_CHECKS stays on


def test_a_quiet_live_connection_is_usable_without_a_round_trip(round_trips: list[None]) -> None:
    connection.ensure_connection()
    assert connection.is_usable()
    assert round_trips == []


def test_a_connection_the_server_ended_is_replaced_before_the_next_query(
    round_trips: list[None],
) -> None:
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    with _other_connection() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])
    wait_for(lambda: _readable(0.1), 5, "the terminated backend's FATAL did not arrive")

    # What Django does before the first query of a request (CONN_HEALTH_CHECKS).
    connection.health_check_done = False
    connection.close_if_health_check_failed()

    assert round_trips == [None]  # the socket had something to say: the server was asked
    assert connection.connection is None  # ... and the dead connection closed
    User.objects.count()  # a new connection serves the query
    assert connection.connection.info.backend_pid != backend


def test_a_notification_waiting_on_the_socket_means_asking_the_server(
    round_trips: list[None],
) -> None:
    connection.ensure_connection()
    connection.connection.execute("LISTEN tessera_backend_test")
    with _other_connection() as other:
        other.execute("NOTIFY tessera_backend_test")
    wait_for(lambda: _readable(0.1), 5, "the notification did not arrive")

    assert connection.is_usable()
    assert round_trips == [None]
    connection.connection.execute("UNLISTEN *")


def test_a_connection_inside_a_transaction_is_checked_by_the_server(
    round_trips: list[None],
) -> None:
    connection.ensure_connection()
    connection.connection.autocommit = False
    try:
        connection.connection.execute("SELECT 1")  # psycopg opened a transaction
        assert connection.is_usable()
        assert round_trips == [None]
    finally:
        connection.connection.rollback()
        connection.connection.autocommit = True


def test_a_closed_connection_is_not_usable(round_trips: list[None]) -> None:
    connection.ensure_connection()
    connection.connection.close()
    assert not connection.is_usable()
    assert round_trips == []
    connection.close()
