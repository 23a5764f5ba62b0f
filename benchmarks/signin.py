"""A whole password sign-in on one core, against the password hash alone on the same core.

    .venv/bin/python -m benchmarks.signin                 # about 2 minutes
    .venv/bin/python -m benchmarks.signin --help          # --concurrency, --duration, ...

Issue 11's target: a whole password sign-in (authorize → login page → password → code, a
first-party client) at ≥ 0.8 times the rate of the argon2id check alone on the same core. The
production server (`python -m idp.web`, granian, one worker) runs pinned to one CPU, on the
embedded default (SQLite + the bundled Redis) and on PostgreSQL + Redis, as
benchmarks/web_servers.py runs it (its Run class: environments, fixtures, server process). The
reference is argon2id verifying the fixtures' password hash with the project's
PASSWORD_HASHERS, in a process pinned to the same CPU, measured in the same run before and
after the servers. The load generator is a pool of processes on the other CPU(s), each a
virtual user signing in again and again, each time as a new browser (no cookies) and as the
next of `--users` people. benchmarks/README.md explains the output. Figures only: the exit
status is non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import multiprocessing
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from benchmarks.oidc_endpoints import (
    PYTHON,
    ROOT,
    BenchmarkError,
    CpuMeter,
    _cpus,
    _die_with_parent,
    cpu_model,
    log,
    run_benchmark,
)
from benchmarks.web_servers import Run

PASSWORD = "benchmark passphrase " + secrets.token_urlsafe(12)
REDIRECT_URI = "https://rp.example.com/callback"  # tests.rp.REDIRECT_URI, which fixtures use
GOAL = 0.8
_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')

# The reference: the check the sign-in's first factor makes (django.contrib.auth.hashers.
# check_password with the project's hashers), in a loop, on the server's CPU.
_HASH_REFERENCE = """
import json, sys, time
import django
django.setup()
from django.contrib.auth.hashers import check_password, identify_hasher
encoded, password, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
assert check_password(password, encoded), "the hash is not of the password"
hasher = identify_hasher(encoded)
assert not hasher.must_update(encoded), "the fixtures' hash is not the project's parameters"
warm = time.monotonic() + 1.0
while time.monotonic() < warm:
    check_password(password, encoded)
times = []
cpu, start = time.process_time(), time.monotonic()
while time.monotonic() - start < seconds:
    began = time.perf_counter()
    check_password(password, encoded)
    times.append(time.perf_counter() - began)
wall, cpu = time.monotonic() - start, time.process_time() - cpu
params = encoded.split("$")[1:4]
print(json.dumps({"checks": len(times), "wall": wall, "cpu": cpu, "times": times,
                  "params": ",".join(params)}))
"""


# --- the virtual users (processes of a pool, on the load generator's CPUs) ---------------


class SignInFailed(Exception):
    pass


@dataclass(frozen=True)
class Job:
    port: int
    client_id: str
    users: int
    first_user: int
    stride: int
    stop_at: float  # time.monotonic(): the same clock in every process


class Browser:
    """A browser without cookies, on one kept-alive connection: just what the sign-in needs
    (cookies by name, relative redirects)."""

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
        self.cookies: dict[str, str] = {}

    def send(self, method: str, path: str, body: str = "") -> tuple[int, str, bytes]:
        headers = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) benchmarks.signin"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body or None, headers=headers)
            response = self.connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # reconnects on the next request
            raise
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            if value.strip('"'):
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return response.status, response.headers.get("Location", ""), content


def _expect(status: int, wanted: int, step: str, body: bytes) -> None:
    if status != wanted:
        raise SignInFailed(f"{step}: status {status}, not {wanted}: {body[:200]!r}")


def sign_in_once(connection: http.client.HTTPConnection, job: Job, email: str) -> float:
    """One whole sign-in; returns the seconds the password POST took."""
    browser = Browser(connection)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(12)
    query = urlencode({
        "response_type": "code", "client_id": job.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "state": state, "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    })  # fmt: skip
    status, to_login, body = browser.send("GET", f"/oauth/authorize?{query}")
    _expect(status, 302, "authorize", body)
    status, _, page = browser.send("GET", to_login)
    _expect(status, 200, "login page", page)
    token = _CSRF.search(page)
    if token is None:
        raise SignInFailed("login page: no CSRF token")
    next_url = parse_qs(urlsplit(to_login).query)["next"][0]
    form = urlencode({
        "csrfmiddlewaretoken": token.group(1).decode(), "email": email,
        "password": PASSWORD, "next": next_url,
    })  # fmt: skip
    began = time.monotonic()
    status, back, body = browser.send("POST", to_login, form)
    post_seconds = time.monotonic() - began
    _expect(status, 302, "password", body)
    status, to_client, body = browser.send("GET", back)
    _expect(status, 302, "authorize after sign-in", body)
    answer = parse_qs(urlsplit(to_client).query)
    if not to_client.startswith(REDIRECT_URI) or answer.get("state") != [state]:
        raise SignInFailed(f"authorize after sign-in answered {to_client[:200]}")
    if "code" not in answer:
        raise SignInFailed(f"no code: {to_client[:200]}")
    return post_seconds


def virtual_user(job: Job) -> tuple[list[tuple[float, float, float]], int, str]:
    """Signs in until stop_at: (end time, seconds, POST seconds) of each, failures, the first
    failure's message."""
    connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=30)
    done: list[tuple[float, float, float]] = []
    failures, first_failure, index = 0, "", job.first_user
    while time.monotonic() < job.stop_at:
        email = f"signin-{index % job.users}@example.com"
        index += job.stride
        began = time.monotonic()
        try:
            post = sign_in_once(connection, job, email)
        except (SignInFailed, OSError, http.client.HTTPException) as error:
            failures += 1
            first_failure = first_failure or f"{type(error).__name__}: {error}"
            continue
        ended = time.monotonic()
        done.append((ended, ended - began, post))
    connection.close()
    return done, failures, first_failure


# --- the run -------------------------------------------------------------------------------


@dataclass
class HashReference:
    when: str
    checks_per_s: float
    cpu_us_per_check: float
    p50_ms: float
    p99_ms: float
    params: str


@dataclass
class SignIns:
    storage: str
    per_s: float
    p50_ms: float
    p99_ms: float
    post_p50_ms: float
    post_p99_ms: float
    signins: int
    failures: int
    first_failure: str
    server_cpu_pct: float
    server_cpu_us_per_signin: float


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


class SignInRun(Run):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.references: list[HashReference] = []
        self.signins: list[SignIns] = []
        self.password_hash = ""
        self.cpu = (0.0, 0.0, 1.0)  # the server's (user, system, wall) seconds of the window

    def hash_reference(self, env: dict[str, str], when: str) -> None:
        """argon2id alone, pinned to the server's CPU (nothing else of ours runs there)."""
        done = subprocess.run(
            [PYTHON, "-c", _HASH_REFERENCE, self.password_hash, PASSWORD,
             str(self.args.hash_duration)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
            preexec_fn=lambda: (os.sched_setaffinity(0, self.placement.server),
                                _die_with_parent()),
        )  # fmt: skip
        if done.returncode != 0:
            raise BenchmarkError(f"the hash reference failed:\n{done.stderr[-2000:]}")
        got = json.loads(done.stdout.strip().splitlines()[-1])
        times = got["times"]
        reference = HashReference(
            when=when,
            checks_per_s=got["checks"] / got["wall"],
            cpu_us_per_check=1e6 * got["cpu"] / got["checks"],
            p50_ms=1000 * _percentile(times, 50),
            p99_ms=1000 * _percentile(times, 99),
            params=got["params"],
        )
        self.references.append(reference)
        log(f"argon2id alone ({when}): {reference.checks_per_s:.1f} checks/s")

    def load(self, port: int, client_id: str) -> tuple[list[tuple[float, float, float]], int, str]:
        """Warm-up then the measured window, without stopping the virtual users in between:
        sign-ins that end inside the window count."""
        concurrency = self.args.concurrency
        start = time.monotonic() + self.args.warmup
        stop = start + self.args.duration
        jobs = [
            Job(port, client_id, self.args.users, i, concurrency, stop) for i in range(concurrency)
        ]
        assert self.server is not None
        meter = CpuMeter(self.server.pids)
        with multiprocessing.get_context("fork").Pool(concurrency) as pool:
            pending = pool.map_async(virtual_user, jobs)
            time.sleep(max(start - time.monotonic(), 0))
            meter.start()
            time.sleep(max(stop - time.monotonic(), 0))
            self.cpu = meter.stop()
            results = pending.get(timeout=self.args.duration + 120)
        done = [r for result in results for r in result[0] if start <= r[0] < stop]
        failures = sum(result[1] for result in results)
        first = next((result[2] for result in results if result[2]), "")
        return done, failures, first

    def measure_storage(self, storage: str, env: dict[str, str]) -> None:
        port = int(env["PORT"])
        fixtures = self.prepare(
            {**env, "BENCH_SIGNIN_USERS": str(self.args.users), "BENCH_SIGNIN_PASSWORD": PASSWORD},
            0,
        )
        if not self.password_hash:
            self.password_hash = fixtures["signin_password_hash"]
            self.hash_reference(env, "before")
        target = f"tessera_{storage}"
        self.start_tessera(target, self.args.tessera_server, env)
        try:
            probe = Job(port, fixtures["signin_client_id"], 1, 0, 1, 0.0)
            with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as c:
                try:
                    sign_in_once(c, probe, "signin-0@example.com")  # must work before the load
                except SignInFailed as error:
                    raise BenchmarkError(f"{target}: the probe sign-in failed: {error}") from None
            done, failures, first = self.load(port, fixtures["signin_client_id"])
        finally:
            self.stop_server()
        user, system, wall = self.cpu
        count = max(len(done), 1)
        result = SignIns(
            storage=storage,
            per_s=len(done) / self.args.duration,
            p50_ms=1000 * _percentile([d[1] for d in done], 50),
            p99_ms=1000 * _percentile([d[1] for d in done], 99),
            post_p50_ms=1000 * _percentile([d[2] for d in done], 50),
            post_p99_ms=1000 * _percentile([d[2] for d in done], 99),
            signins=len(done),
            failures=failures,
            first_failure=first,
            server_cpu_pct=100 * (user + system) / wall,
            server_cpu_us_per_signin=1e6 * (user + system) / count,
        )
        self.signins.append(result)
        log(f"{target}: {result.per_s:.1f} sign-ins/s p50 {result.p50_ms:.0f} ms "
            f"failures {failures} {first}")  # fmt: skip

    def run(self) -> None:
        from tests.servers import free_port

        started = time.monotonic()
        os.sched_setaffinity(0, self.placement.others)
        self.secret_key = secrets.token_urlsafe(64)
        self.kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        env: dict[str, str] = {}
        for storage in self.args.storages:
            port = free_port()
            if storage == "postgres_redis":
                self.start_postgres_redis()
                env = self.postgres_env(port)
            else:
                env = self.embedded_env(port)
                self.start_bundled_redis(env)
            self.measure_storage(storage, env)
            if storage == "postgres_redis":
                for server in self.backing:
                    server.stop()
                self.backing = []
        self.hash_reference(env, "after")
        self.report(time.monotonic() - started)

    def report(self, elapsed: float) -> None:
        import django

        loadavg_after = "/".join(f"{v:.2f}" for v in os.getloadavg())
        print(
            f"machine nproc={os.cpu_count()} cpu_model={json.dumps(cpu_model())} "
            f"python={platform.python_version()} django={django.get_version()} "
            f"server_cpus={_cpus(self.placement.server)} "
            f"loadgen_cpus={_cpus(self.placement.others)} "
            f"loadavg_before={self.loadavg_before} loadavg_after={loadavg_after}"
        )
        print(
            f"config concurrency={self.args.concurrency} users={self.args.users} "
            f"warmup_s={self.args.warmup} duration_s={self.args.duration} "
            f"hash_duration_s={self.args.hash_duration} log_level={self.args.log_level} "
            f"elapsed_s={elapsed:.0f}"
        )
        for h in self.references:
            print(
                f"hash_reference when={h.when} params={h.params} "
                f"checks_per_s={h.checks_per_s:.1f} cpu_us_per_check={h.cpu_us_per_check:.0f} "
                f"p50_ms={h.p50_ms:.2f} p99_ms={h.p99_ms:.2f}"
            )
        rate = statistics.mean(h.checks_per_s for h in self.references)
        cpu = statistics.mean(h.cpu_us_per_check for h in self.references)
        for s in self.signins:
            print(
                f"signin storage={s.storage} signins_per_s={s.per_s:.1f} p50_ms={s.p50_ms:.0f} "
                f"p99_ms={s.p99_ms:.0f} post_p50_ms={s.post_p50_ms:.0f} "
                f"post_p99_ms={s.post_p99_ms:.0f} signins={s.signins} failures={s.failures} "
                f"server_cpu_pct={s.server_cpu_pct:.0f} "
                f"server_cpu_us_per_signin={s.server_cpu_us_per_signin:.0f} "
                f"ratio_vs_hash={s.per_s / rate:.2f} "
                f"cpu_ratio_vs_hash={cpu / max(s.server_cpu_us_per_signin, 1):.2f}"
                + (f" first_failure={json.dumps(s.first_failure)}" if s.first_failure else "")
            )
        for s in self.signins:
            ratio = s.per_s / rate
            verdict = "met" if ratio >= GOAL and not s.failures else "not_met"
            print(
                f"target storage={s.storage} goal=ratio>={GOAL:.2f} ratio={ratio:.2f} "
                f"verdict={verdict}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="virtual users (processes)")
    parser.add_argument("--users", type=int, default=2000, help="people signed in in turn")
    parser.add_argument("--warmup", type=int, default=5, help="seconds before measuring")
    parser.add_argument("--duration", type=int, default=20, help="seconds measured")
    parser.add_argument("--hash-duration", type=float, default=10, help="seconds of argon2id")
    parser.add_argument(
        "--storages", nargs="+", default=["embedded", "postgres_redis"],
        choices=("embedded", "postgres_redis"),
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    parser.add_argument("--tessera-server", default="production", help=argparse.SUPPRESS)
    return run_benchmark(SignInRun(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
