"""Django's PostgreSQL backend with a connection health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django runs `SELECT 1` before the first query of each request on a
reused connection. On this IdP most requests that touch the database make one statement (the
security event of a client_credentials token, the user behind userinfo), so the check doubled
their database round trips; measured in-process, it was about 95 µs of CPU of a 780 µs token
request (benchmarks/audit_pipeline.py).

A connection the server has ended (restart, pg_terminate_backend, idle_session_timeout, a
proxy's timeout) has something waiting on its socket: the server's FATAL message and end of
file, or a reset. A live, idle connection has nothing to say between statements. So a socket
with nothing to read is usable without asking; anything else (data, hang-up, error, a
connection psycopg already knows is closed or broken, one not idle) gets Django's `SELECT 1`.
A peer that vanished without a word (a cut cable) passes both checks alike: the query then
fails and Django marks the connection for closing, as before.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq

# Everything poll() can report; POLLHUP and POLLERR are reported whether asked for or not.
_ANY_EVENT = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return bool(super().is_usable())
        poller = select.poll()
        poller.register(connection.fileno(), _ANY_EVENT)
        if poller.poll(0):
            return bool(super().is_usable())
        return True
