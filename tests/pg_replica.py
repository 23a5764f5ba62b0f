"""A PostgreSQL streaming replica of the suite's server (pg_basebackup -R: a hot standby that
follows the primary's WAL), started on a free loopback port for the read-replica tests."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

import psycopg

from tests.servers import Postgres, Server


class PostgresReplica(Postgres):
    name = "postgres-replica"

    def __init__(self, base: Path, primary: Postgres) -> None:
        Server.__init__(self, base)  # no initdb: the data directory is the primary's copy
        self.primary = primary
        self.bindir = primary.bindir
        self.data = self.dir / "data"
        self.os_user = primary.os_user
        if self.os_user:
            account = pwd.getpwnam(self.os_user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        began = time.monotonic()
        subprocess.run(
            [str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
             "-U", primary.user, "-D", str(self.data), "-R", "-X", "stream",
             "--checkpoint=fast", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=self.os_user,
        )  # fmt: skip
        self.copied_in = time.monotonic() - began

    def caught_up(self, database: str) -> bool:
        """Whether the replica has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.url(database), autocommit=True) as primary:
            row = primary.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        with psycopg.connect(self.url(database), autocommit=True) as replica:
            replayed = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [row[0]]
            ).fetchone()
        return bool(replayed and replayed[0])

    def replay(self, database: str, *, paused: bool) -> None:
        """Pauses or resumes WAL replay: the replica stands still, as if it lagged."""
        function = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
        with psycopg.connect(self.url(database), autocommit=True) as replica:
            replica.execute(f"SELECT {function}()")
