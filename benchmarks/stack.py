"""The throwaway PostgreSQL and Redis a benchmark runs Tessera against (tests.servers), on the
other CPU(s), with the settings pointed at them and the database migrated; the benchmark's
own process is then pinned to one CPU. Shared by benchmarks/ratelimit.py and
benchmarks/threat_assess.py."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


class Stack:
    def __init__(self, name: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix=f"tessera-bench-{name}-"))
        self.base.chmod(0o755)
        cpus = sorted(os.sched_getaffinity(0))
        self.own_cpu = {cpus[0]}
        self.other_cpus = set(cpus[1:]) or set(cpus)
        self.servers: list[Any] = []

    def start(self, env: dict[str, str] | None = None, *, collectstatic: bool = False) -> None:
        """Starts the servers, sets the environment (`env` on top of the stack's own), sets
        Django up and migrates; returns pinned to this process's own CPU."""
        from tests.servers import _OWN_SETTINGS, Postgres, Redis

        os.sched_setaffinity(0, self.other_cpus)
        self.postgres, self.redis = Postgres(self.base), Redis(self.base)
        self.servers = [self.postgres, self.redis]
        for server in self.servers:
            server.spawn()
        for server in self.servers:
            server.wait_ready()
        subprocess.run(
            [str(self.postgres.bindir / "createdb"), "-h", "127.0.0.1",
             "-p", str(self.postgres.port), "-U", self.postgres.user, "tessera"],
            check=True,
        )  # fmt: skip
        for name in list(os.environ):
            if name.startswith(_OWN_SETTINGS):
                del os.environ[name]
        os.environ.update(
            DJANGO_SETTINGS_MODULE="idp.settings",
            DATABASE_URL=self.postgres.url(),
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
            IDP_SECRET_KEY=secrets.token_urlsafe(64),
            IDP_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            IDP_DATA_DIR=str(self.base / "data"),
            IDP_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warning"),
            IDP_AUDIT_SHIP_THRESHOLD="1000000",
        )
        os.environ.update(env or {})
        import django
        from django.core.management import call_command

        django.setup()
        log("migrate")
        call_command("migrate", interactive=False, verbosity=0)
        if collectstatic:
            call_command("collectstatic", interactive=False, verbosity=0)
        os.sched_setaffinity(0, self.own_cpu)

    def stop(self) -> None:
        from django.db import connections

        from apps.core import journal

        journal.shutdown()
        connections.close_all()
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.base, ignore_errors=True)
