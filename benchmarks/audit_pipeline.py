"""The audit pipeline on one core: what emit() costs a request, and how fast events ship.

    .venv/bin/python -m benchmarks.audit_pipeline [--events 200000] [--batches 10000 ...]

Starts a throwaway PostgreSQL, Redis and ClickHouse (tests.servers) on the other CPU(s),
migrates the database and the audit schema (`migrate`, `audit_migrate`), then, in this process
pinned to one CPU:

1. emit: --requests client_credentials token requests (POST /oauth/token, a client made by
   apps.tokens.services.client_create) served in-process by Django's WSGIHandler (the whole
   middleware stack and request signals, no HTTP server), once per way of writing the event:
   as served (one INSERT), a bare `SELECT 1` round trip instead, and not written. The three
   arms alternate in blocks; each request is timed (wall and thread CPU time), and so is emit()
   inside the view. What emit() adds to the request is the CPU difference between the first
   and the last arm: it includes what the round trip costs the rest of the request.
2. shipping, once per --batches size: --events rows put in the outbox by one INSERT ... SELECT
   generate_series, then shipping.outbox_drain(batch_size=...) until the outbox is empty;
   timed from the start until ClickHouse's `SELECT count() FROM audit_events FINAL` equals
   --events.

benchmarks/README.md explains the output. Figures only: nothing is asserted; the exit status
is non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.oidc_endpoints import (
    BenchmarkError,
    CpuMeter,
    Placement,
    _children,
    _cpus,
    cpu_model,
    log,
    run_benchmark,
    start_servers,
)

EMIT_SHARE_TARGET = 0.05  # emit() under 5 % of a token request's CPU
SHIP_RATE_TARGET = 20_000  # events per second, end to end

# Rows shaped like emit()'s (token.issued and friends, a user, a client, an IPv4 address, a
# browser, JSON metadata), spread over the last N milliseconds.
_FILL_OUTBOX = """
INSERT INTO core_security_event (
    id, occurred_at, event_type, user_id, actor_id, session_id, resource_type, resource_id,
    action, success, error_code, error_message, ip_address, user_agent, request_id,
    duration_ms, metadata, severity, compliance_tags)
SELECT gen_random_uuid(),
       now() - (%(n)s - i) * interval '1 millisecond',
       (ARRAY['token.issued', 'login.succeeded', 'token.refreshed', 'login.failed'])[1 + i %% 4],
       md5('user' || i %% 5000)::uuid::text, '', md5('session' || i %% 20000)::uuid::text,
       'client', 'client-' || i %% 50, 'issued', i %% 10 <> 0,
       CASE WHEN i %% 10 = 0 THEN 'invalid_grant' ELSE '' END,
       CASE WHEN i %% 10 = 0 THEN 'The refresh token was already used.' ELSE '' END,
       ('10.' || i / 65536 %% 256 || '.' || i / 256 %% 256 || '.' || i %% 256)::inet,
       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0',
       md5('request' || i), (i %% 200) / 3.0,
       jsonb_build_object('grant_type', 'client_credentials', 'scope', 'openid profile'),
       CASE WHEN i %% 10 = 0 THEN 'high' ELSE 'low' END, '["SOC2"]'::jsonb
FROM generate_series(1, %(n)s) AS i
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.placement = Placement.choose()
        self.base = Path(tempfile.mkdtemp(prefix="tessera-bench-audit-"))
        self.base.chmod(0o755)  # the postgres user (under root) must reach its folder inside
        self.servers: list[Any] = []
        self.lines: list[str] = []

    def start_servers(self) -> None:
        from tests.servers import ClickHouse, Postgres, Redis

        # The servers inherit these CPUs; this process moves to its own CPU afterwards.
        os.sched_setaffinity(0, self.placement.others)
        self.postgres = Postgres(self.base)
        self.redis = Redis(self.base)
        self.clickhouse = ClickHouse(self.base)
        self.servers = [self.postgres, self.redis, self.clickhouse]
        start_servers(self.servers)

    def setup_django(self) -> None:
        from tests.servers import _OWN_SETTINGS

        for name in list(os.environ):
            if name.startswith(_OWN_SETTINGS):
                del os.environ[name]
        os.environ.update(
            DJANGO_SETTINGS_MODULE="idp.settings",
            DATABASE_URL=self.postgres.url(),
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
            CLICKHOUSE_URL=self.clickhouse.url(),
            IDP_SECRET_KEY=secrets.token_urlsafe(64),
            IDP_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            IDP_DATA_DIR=str(self.base / "data"),
            IDP_LOG_LEVEL="warning",
        )
        import django
        from django.core.management import call_command

        django.setup()
        log("migrate + audit_migrate")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("audit_migrate", stdout=open(os.devnull, "w"))  # noqa: SIM115
        # From here on this process (emit, the token endpoint, the shipper) has one CPU.
        os.sched_setaffinity(0, self.placement.server)

    # --- 1. what emit() adds to a token request ------------------------------------------

    def measure_emit(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        from apps.tokens import client_credentials
        from apps.tokens.services import client_create

        self.handler = WSGIHandler()

        # client_credentials: the event is the request's only write.
        client, secret = client_create(
            name="benchmark service", redirect_uris=[], grant_types=["client_credentials"]
        )
        credentials = (client.client_id, secret)
        form = "grant_type=client_credentials&scope=openid"
        emit_walls: list[float] = []
        emit_cpus: list[float] = []
        block: list[tuple[float, float]] = []
        emit = client_credentials.emit

        def timed_emit(*args: Any, **kwargs: Any) -> Any:
            # emit() timed where it runs: inside the token view.
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            try:
                return emit(*args, **kwargs)
            finally:
                cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
                block.append((wall / 1000, cpu / 1000))

        def keep_served(arm: str, measured: bool) -> None:
            if arm == "event" and measured:
                emit_walls.extend(wall for wall, _ in block)
                emit_cpus.extend(cpu for _, cpu in block)
            block.clear()

        client_credentials.emit = timed_emit
        try:
            self.compare_writes(
                "client_credentials",
                "token.issued",
                self.args.requests,
                lambda: (form, credentials),
                lambda body: None,
                on_arm=keep_served,
            )
        finally:
            client_credentials.emit = emit
        self.lines.append(
            f"emit_in_request grant=client_credentials calls={len(emit_cpus)} "
            f"wall_p50_us={_percentile(emit_walls, 0.5):.1f} "
            f"wall_p99_us={_percentile(emit_walls, 0.99):.1f} "
            f"cpu_p50_us={_percentile(emit_cpus, 0.5):.1f} "
            f"cpu_p99_us={_percentile(emit_cpus, 0.99):.1f} "
            f"cpu_mean_us={statistics.fmean(emit_cpus):.1f}"
        )

        # refresh_token: the event is one more statement in the rotation's transaction.
        refresh_token = self.first_refresh_token()
        webapp = self.webapp

        def next_token(body: bytes) -> None:
            nonlocal refresh_token
            refresh_token = json.loads(body)["refresh_token"]

        self.compare_writes(
            "refresh_token",
            "token.refreshed",
            self.args.refreshes,
            lambda: (f"grant_type=refresh_token&refresh_token={refresh_token}", webapp),
            next_token,
        )

    def first_refresh_token(self) -> str:
        """A user signs in and a web app gets tokens through the code flow (the test suite's
        relying party, tests.tokens.conftest.Flow, on Django's test client)."""
        from django.test import Client as HttpClient

        from apps.accounts.services import user_create
        from apps.tokens.services import client_create
        from tests.signin.browser import force_sign_in
        from tests.tokens.conftest import REDIRECT_URI, Flow, RegisteredClient

        client, secret = client_create(
            name="benchmark web app",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            skip_consent=True,
        )
        self.webapp = (client.client_id, secret)
        browser = HttpClient(HTTP_HOST="127.0.0.1")
        force_sign_in(browser, user_create(email="benchmark@example.com", name="Benchmark User"))
        tokens = Flow(browser, RegisteredClient(client.client_id, secret)).tokens()
        return str(tokens["refresh_token"])

    def token_request(self, form: str, client: tuple[str, str]) -> tuple[float, float, bytes]:
        """POST /oauth/token through Django's WSGIHandler: (wall µs, CPU µs, body)."""
        body = form.encode()
        credentials = base64.b64encode(":".join(client).encode()).decode()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/oauth/token", "SCRIPT_NAME": "",
            "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "benchmark/1.0",
            "HTTP_AUTHORIZATION": f"Basic {credentials}",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        }  # fmt: skip
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        response = self.handler(environ, lambda status, headers, exc_info=None: None)
        content = b"".join(response)
        response.close()
        cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
        if response.status_code != 200:
            raise BenchmarkError(f"a {form.split('&')[0]} request answered {response.status_code}")
        return wall / 1000, cpu / 1000, content

    def compare_writes(
        self,
        grant: str,
        event_type: str,
        requests: int,
        request: Callable[[], tuple[str, tuple[str, str]]],
        on_body: Callable[[bytes], None],
        on_arm: Callable[[str, bool], None] = lambda arm, measured: None,
    ) -> None:
        """Token requests of one grant in three arms that alternate in blocks (the first block
        warms every arm up and is dropped): the event written as served, a bare `SELECT 1` in
        its place, and the event not written. on_arm(arm, measured) runs after each arm's
        block."""
        import psycopg
        from django.db import connection

        from apps.core import outbox
        from apps.core.models import SecurityEvent

        def select_1(values: Any) -> None:
            with psycopg.Cursor(connection.connection) as cursor:
                cursor.execute("SELECT 1", prepare=True)

        write = outbox.write
        arms: dict[str, Callable[[Any], None]] = {
            "event": write,  # as served: one INSERT, committed before the response
            "select_1": select_1,  # the same round trip, for a statement that does nothing
            "none": lambda values: None,  # the event built, not written
        }
        samples: dict[str, list[tuple[float, float]]] = {arm: [] for arm in arms}
        blocks = 10
        per_block = max(1, requests // blocks)
        log(f"token: {per_block * blocks} {grant} requests per arm ({', '.join(arms)})")
        events = SecurityEvent.objects.filter(event_type=event_type)
        events_before = events.count()
        try:
            for block in range(blocks + 1):
                for arm, arm_write in arms.items():
                    outbox.write = arm_write
                    for _ in range(per_block):
                        wall, cpu, body = self.token_request(*request())
                        on_body(body)
                        if block:
                            samples[arm].append((wall, cpu))
                    on_arm(arm, bool(block))
        finally:
            outbox.write = write
        written = events.count() - events_before
        if written != per_block * (blocks + 1):
            raise BenchmarkError(f"{written} {event_type} events written, not one per request")

        means = {}
        for arm, measured in samples.items():
            walls, cpus = [wall for wall, _ in measured], [cpu for _, cpu in measured]
            means[arm] = statistics.fmean(cpus)
            self.lines.append(
                f"token_request grant={grant} write={arm} requests={len(measured)} "
                f"wall_p50_us={_percentile(walls, 0.5):.0f} "
                f"wall_p99_us={_percentile(walls, 0.99):.0f} "
                f"cpu_p50_us={_percentile(cpus, 0.5):.0f} "
                f"cpu_p99_us={_percentile(cpus, 0.99):.0f} cpu_mean_us={means[arm]:.0f}"
            )
        added = means["event"] - means["none"]
        share = added / means["none"]
        self.lines.append(
            f"target emit_adds_to_token_request_cpu grant={grant} "
            f"goal<{100 * EMIT_SHARE_TARGET:.0f}% added_us={added:.0f} "
            f"round_trip_us={means['select_1'] - means['none']:.0f} share_pct={100 * share:.1f} "
            f"verdict={'met' if share < EMIT_SHARE_TARGET else 'not_met'}"
        )

    # --- 2. shipping throughput -----------------------------------------------------------

    def measure_shipping(self, batch_size: int) -> float:
        from django.db import connection

        from apps.audit.clickhouse_schema import PARTITIONED_TABLES
        from apps.audit.shipping import outbox_drain
        from apps.core.clickhouse import get_clickhouse
        from tests.audit.conftest import ROWS_FINAL, TRUNCATE

        clickhouse = get_clickhouse()
        for table in PARTITIONED_TABLES:
            clickhouse.execute(TRUNCATE.format(table=table))
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE core_security_event")
            cursor.execute(_FILL_OUTBOX, {"n": self.args.events})
            cursor.execute("VACUUM ANALYZE core_security_event")
        log(f"shipping: {self.args.events} events, batch {batch_size}")

        def server_pids() -> list[int]:
            pids = []
            for server in (self.postgres, self.clickhouse):
                if server.process is not None:
                    pids += [server.process.pid, *_children(server.process.pid)]
            return pids

        servers_cpu = CpuMeter(server_pids)
        servers_cpu.start()
        started, cpu = time.perf_counter(), time.thread_time()
        shipped = outbox_drain(batch_size=batch_size)
        shipper_cpu = time.thread_time() - cpu
        drained = time.perf_counter() - started
        count = 0
        while count < self.args.events and time.perf_counter() - started < 600:
            (count,) = clickhouse.execute(ROWS_FINAL)[0]
        elapsed = time.perf_counter() - started
        user, system, _ = servers_cpu.stop()
        rate = count / elapsed
        self.lines.append(
            f"shipping events={self.args.events} batch={batch_size} shipped={shipped} "
            f"in_clickhouse={count} seconds={elapsed:.2f} drain_seconds={drained:.2f} "
            f"events_per_s={rate:.0f} shipper_cpu_s={shipper_cpu:.2f} "
            f"shipper_cpu_us_per_event={1e6 * shipper_cpu / max(shipped, 1):.1f} "
            f"pg_and_clickhouse_cpu_s={user + system:.2f}"
        )
        return rate

    # --- the run --------------------------------------------------------------------------

    def run(self) -> None:
        started = time.monotonic()
        loadavg = "/".join(f"{value:.2f}" for value in os.getloadavg())
        self.start_servers()
        self.setup_django()
        self.measure_emit()
        rates = {batch: self.measure_shipping(batch) for batch in self.args.batches}
        from django.conf import settings

        default = settings.AUDIT_SHIP_BATCH
        import django

        print(
            f"machine nproc={os.cpu_count()} cpu_model={json.dumps(cpu_model())} "
            f"python={platform.python_version()} django={django.get_version()} "
            f"process_cpus={_cpus(self.placement.server)} "
            f"servers_cpus={_cpus(self.placement.others)} loadavg_before={loadavg}"
        )
        print(
            f"config requests={self.args.requests} refreshes={self.args.refreshes} "
            f"events={self.args.events} batches={','.join(map(str, self.args.batches))} "
            f"default_batch={default} elapsed_s={time.monotonic() - started:.0f}"
        )
        for line in self.lines:
            print(line)
        if default in rates:
            rate = rates[default]
            print(
                f"target shipping_events_per_s batch={default} goal>={SHIP_RATE_TARGET} "
                f"events_per_s={rate:.0f} "
                f"verdict={'met' if rate >= SHIP_RATE_TARGET else 'not_met'}"
            )

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=2000, help="client_credentials requests timed per arm"
    )
    parser.add_argument(
        "--refreshes", type=int, default=300, help="refresh_token requests timed per arm"
    )
    parser.add_argument("--events", type=int, default=200_000, help="events shipped per run")
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[1000, 5000, 10_000, 20_000],
        help="AUDIT_SHIP_BATCH sizes to ship with, one run each",
    )
    return run_benchmark(Benchmark(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
