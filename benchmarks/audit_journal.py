"""What recording a security event outside a transaction costs: the journal (issue 11) beside a
synchronous INSERT and beside no write at all.

    .venv/bin/python -m benchmarks.audit_journal [--emits 20000] [--requests 3000]

Starts a throwaway PostgreSQL and Redis (tests.servers) on the other CPU(s), migrates, then, in
this process pinned to one CPU, runs three arms that alternate in blocks (the first block of
each warms up and is dropped):

- journal: emit() outside a transaction, IDP_AUDIT_JOURNAL on (one write(2) to this process's
  journal; the drain thread moves batches to the outbox on the same CPU);
- insert: the same with the journal off (one INSERT, committed, per event);
- none: core.outbox.write made a no-op (emit() builds the row and drops it).

1. emit: --emits calls of emit() per arm, each timed (wall and thread CPU). The drain thread's
   CPU is not in a call's time; `drain_cpu_per_event_us` is the whole process's CPU over the
   journal arm minus the callers' own, per event: what the background batches cost.
2. drain latency: --latency-samples single events, each timed from emit() returning until
   its row is committed in the outbox (polled every millisecond).
3. request: --requests client_credentials token requests per arm (POST /oauth/token through
   Django's WSGIHandler: the whole middleware stack, no HTTP server), each timed; the
   journal's share of a request is (journal - none) / none, by thread CPU and by process CPU.

Prints key=value lines; benchmarks/README.md explains them. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARMS = ("journal", "insert", "none")


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _process_cpu_us() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1_000_000


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = Path(tempfile.mkdtemp(prefix="tessera-bench-journal-"))
        self.base.chmod(0o755)  # the postgres user (under root) must reach its folder inside
        cpus = sorted(os.sched_getaffinity(0))
        self.own_cpu = {cpus[0]}
        self.other_cpus = set(cpus[1:]) or set(cpus)
        self.servers: list[Any] = []

    def start(self) -> None:
        from tests.servers import _OWN_SETTINGS, Postgres, Redis

        os.sched_setaffinity(0, self.other_cpus)  # the servers inherit these CPUs
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
            IDP_LOG_LEVEL="warning",
            IDP_AUDIT_SHIP_THRESHOLD="1000000",
        )
        import django
        from django.core.management import call_command

        django.setup()
        log("migrate")
        call_command("migrate", interactive=False, verbosity=0)
        os.sched_setaffinity(0, self.own_cpu)  # from here on: one CPU for emit and drain

    def stop(self) -> None:
        from apps.core import journal

        journal.shutdown()
        from django.db import connections

        connections.close_all()
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def arm(self, name: str) -> Callable[[], None]:
        """Switch to an arm; returns the function that switches back."""
        from django.conf import settings

        from apps.core import outbox

        if name == "insert":
            settings.AUDIT_JOURNAL = False
            return lambda: setattr(settings, "AUDIT_JOURNAL", True)
        if name == "none":
            write = outbox.write
            outbox.write = lambda values: None  # type: ignore[assignment]
            return lambda: setattr(outbox, "write", write)
        return lambda: None

    def alternate(self, total: int, one: Callable[[], tuple[float, float]]) -> dict[str, Any]:
        """`total` calls per arm in 10 blocks (+1 dropped warm-up block): per arm the wall and
        thread-CPU times of each call, and process CPU over the arm's blocks."""
        from apps.core import journal

        block = max(1, total // 10)
        results: dict[str, Any] = {
            arm: {"wall": [], "cpu": [], "process_cpu": 0.0, "calls": 0} for arm in ARMS
        }
        for round_ in range(11):
            for arm in ARMS:
                restore = self.arm(arm)
                journal.drain_now()  # each arm starts with an empty journal
                process_before = _process_cpu_us()
                times = [one() for _ in range(block)]
                journal.drain_now()  # the journal arm pays its drain inside its blocks
                process_after = _process_cpu_us()
                restore()
                if round_ == 0:
                    continue
                results[arm]["wall"].extend(wall for wall, _ in times)
                results[arm]["cpu"].extend(cpu for _, cpu in times)
                results[arm]["process_cpu"] += process_after - process_before
                results[arm]["calls"] += block
        return results

    def measure_emit(self) -> list[str]:
        from apps.core.events import EventType, emit

        def one() -> tuple[float, float]:
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            emit(
                EventType.TOKEN_ISSUED,
                resource_type="client",
                resource_id="benchmark",
                metadata={"grant_type": "client_credentials", "scope": "openid"},
            )
            return (time.perf_counter_ns() - wall) / 1000, (time.thread_time_ns() - cpu) / 1000

        log(f"emit: {self.args.emits} calls per arm")
        results = self.alternate(self.args.emits, one)
        lines = []
        for arm in ARMS:
            r = results[arm]
            lines.append(
                f"emit arm={arm} calls={r['calls']} "
                f"wall_p50_us={_percentile(r['wall'], 0.5):.1f} "
                f"wall_p99_us={_percentile(r['wall'], 0.99):.1f} "
                f"cpu_p50_us={_percentile(r['cpu'], 0.5):.1f} "
                f"cpu_p99_us={_percentile(r['cpu'], 0.99):.1f} "
                f"process_cpu_per_event_us={r['process_cpu'] / r['calls']:.1f}"
            )
        journal_arm, none_arm = results["journal"], results["none"]
        drain = (journal_arm["process_cpu"] - sum(journal_arm["cpu"])) / journal_arm["calls"]
        append = _percentile(journal_arm["cpu"], 0.5) - _percentile(none_arm["cpu"], 0.5)
        lines.append(
            f"emit_journal append_cpu_p50_us={append:.1f} drain_cpu_per_event_us={drain:.1f}"
        )
        return lines

    def measure_latency(self) -> list[str]:
        """From emit() returning to the row being committed in the outbox (polled every 1 ms
        from this thread): the drain thread's window, its wake-up and its transaction."""
        from apps.core.events import EventType, emit
        from apps.core.models import SecurityEvent

        latencies = []
        for _ in range(self.args.latency_samples):
            time.sleep(0.05)  # each event on its own: the drain thread is idle when it comes
            event_id = emit(EventType.LOGOUT)
            appended = time.perf_counter()
            while not SecurityEvent.objects.filter(id=event_id).exists():
                time.sleep(0.001)
            latencies.append((time.perf_counter() - appended) * 1000)
        return [
            f"drain_latency samples={len(latencies)} "
            f"p50_ms={_percentile(latencies, 0.5):.1f} p99_ms={_percentile(latencies, 0.99):.1f} "
            f"max_ms={max(latencies):.1f} target_ms=50"
        ]

    def measure_requests(self) -> list[str]:
        from django.core.handlers.wsgi import WSGIHandler

        from apps.tokens.services import client_create

        handler = WSGIHandler()
        client, secret = client_create(
            name="benchmark service", redirect_uris=[], grant_types=["client_credentials"]
        )
        credentials = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
        body = b"grant_type=client_credentials"

        def one() -> tuple[float, float]:
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
            response = handler(environ, lambda status, headers, exc_info=None: None)
            b"".join(response)
            response.close()
            cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
            if response.status_code != 200:
                raise RuntimeError(f"the token endpoint answered {response.status_code}")
            return wall / 1000, cpu / 1000

        log(f"request: {self.args.requests} client_credentials requests per arm")
        results = self.alternate(self.args.requests, one)
        lines = []
        for arm in ARMS:
            r = results[arm]
            lines.append(
                f"request grant=client_credentials arm={arm} requests={r['calls']} "
                f"wall_p50_us={_percentile(r['wall'], 0.5):.0f} "
                f"wall_p99_us={_percentile(r['wall'], 0.99):.0f} "
                f"cpu_p50_us={_percentile(r['cpu'], 0.5):.0f} "
                f"cpu_mean_us={statistics.fmean(r['cpu']):.0f} "
                f"process_cpu_per_request_us={r['process_cpu'] / r['calls']:.0f}"
            )
        base = results["none"]

        def share(arm: str, key: str) -> str:
            if key == "process":
                mine = results[arm]["process_cpu"] / results[arm]["calls"]
                theirs = base["process_cpu"] / base["calls"]
            else:
                mine, theirs = statistics.fmean(results[arm]["cpu"]), statistics.fmean(base["cpu"])
            return f"{(mine - theirs) / theirs * 100:.1f}"

        for arm in ("journal", "insert"):
            lines.append(
                f"request_overhead arm={arm} thread_cpu_pct={share(arm, 'thread')} "
                f"process_cpu_pct={share(arm, 'process')} target_pct=5"
            )
        return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emits", type=int, default=20000, help="emit() calls per arm")
    parser.add_argument("--requests", type=int, default=3000, help="token requests per arm")
    parser.add_argument("--latency-samples", type=int, default=200, help="events timed")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    benchmark = Benchmark(args)
    try:
        benchmark.start()
        lines = [f"cpus={len(os.sched_getaffinity(0))} python={sys.version.split()[0]}"]
        lines += benchmark.measure_emit()
        lines += benchmark.measure_latency()
        lines += benchmark.measure_requests()
    finally:
        benchmark.stop()
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
