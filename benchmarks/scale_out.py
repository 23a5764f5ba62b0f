"""Scale-out proof (issue 19): the whole stack on loopback, two web processes behind a proxy.

    .venv/bin/python -m benchmarks.scale_out              # about 7 minutes
    .venv/bin/python -m benchmarks.scale_out --quick      # 2-3 minutes, a smoke run
    .venv/bin/python -m benchmarks.scale_out --help       # --duration, --users, --mix, ...

Starts PostgreSQL, Redis, ZooKeeper and a two-shard ClickHouse cluster (tests.servers), two
production web processes (`python -m idp.web`, one granian worker each), nginx in front of
them, two Celery workers and Celery beat; then drives mixed traffic through the proxy (hosted
sign-ins with PKCE code exchanges, refreshes, client_credentials, userinfo) and shows:

1. a login session revoked during the load is refused by userinfo on each web process, asked
   directly (not through the proxy), within 1 s;
2. every security event the run emitted (the processes' own Prometheus counter) is in
   ClickHouse exactly once, through the Distributed table and per shard;
3. the same traffic through the proxy to one web process, then to both: the throughput ratio.

benchmarks/README.md ("Scale-out proof") explains the output. Figures only: the exit status is
non-zero only when the benchmark itself could not run.
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
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from benchmarks.oidc_endpoints import (
    BENCH_RATE_RULES,
    PYTHON,
    ROOT,
    BenchmarkError,
    _die_with_parent,
    cpu_model,
    log,
    run_benchmark,
)
from benchmarks.signin import _CSRF, REDIRECT_URI, Browser
from benchmarks.web_servers import _tree

SCOPE = "openid profile email"
PROXY_ADDRESS = "127.0.0.2"  # nginx's side of its connections to Tessera: the trusted proxy
AUDIT_DATABASE = "tessera_audit"
KINDS = ("signin", "code_exchange", "refresh", "client_credentials", "userinfo")
# Operations a virtual user picks, by weight (a sign-in is followed by its code exchange).
DEFAULT_MIX = "signin=1,refresh=4,client_credentials=10,userinfo=25"
REVOCATION_BOUND_S = 1.0
REVOCATION_GIVE_UP_S = 10.0
DRAIN_TIMEOUT_S = 180.0
READY_TIMEOUT_S = 120.0
TOKENS_KEPT = 4  # (access, refresh) pairs a virtual user keeps to spend

NGINX_CONFIG = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream tessera_both {{
        server 127.0.0.1:{web1};
        server 127.0.0.1:{web2};
        keepalive 64;
    }}
    upstream tessera_web1 {{
        server 127.0.0.1:{web1};
        keepalive 64;
    }}
    # The issuer: both web processes, round robin.
    server {{
        listen 127.0.0.1:{port_both};
        location / {{
            proxy_pass http://tessera_both;
{common}
        }}
    }}
    # The same site served by web 1 alone (the throughput comparison).
    server {{
        listen 127.0.0.1:{port_one};
        location / {{
            proxy_pass http://tessera_web1;
{common}
        }}
    }}
}}
"""
NGINX_COMMON = """            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_bind {proxy_address};
            proxy_set_header Host {host};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto http;"""


# --- the virtual users (spawned processes) -------------------------------------------------


@dataclass(frozen=True)
class Job:
    port: int  # the proxy's
    signin_client: tuple[str, str]
    service_client: tuple[str, str]
    password: str  # person i's is password + "-i"
    users: int
    first_user: int
    stride: int
    mix: tuple[tuple[str, int], ...]
    start_at: float  # time.monotonic(): one clock for every process on the host
    stop_at: float
    seed: int


@dataclass
class Outcome:
    """What one virtual user did: per kind, (end time, seconds) of each success in the
    window; failures by kind and status, and the first failure's message."""

    done: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)  # "kind:status"
    first_failure: str = ""
    cpu_s: float = 0.0  # this process's CPU time inside the window


class Failed(Exception):
    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(message)
        self.kind, self.status = kind, status


def _basic(client: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()


def _call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: str = "",
) -> tuple[int, bytes]:
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        connection.close()  # reconnects on the next request
        raise


def sign_in(
    connection: http.client.HTTPConnection, client_id: str, email: str, password: str
) -> tuple[str, str]:
    """The hosted sign-in as a browser does it (no cookies at first): authorize, the login
    page, the password with the page's CSRF token, authorize again; returns (code, verifier)."""
    browser = Browser(connection)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(12)
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": SCOPE, "state": state, "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    })  # fmt: skip
    status, to_login, body = _step(browser, "authorize", "GET", f"/oauth/authorize?{query}")
    if status != 302:
        raise Failed("signin", status, f"authorize: {status} {body[:200]!r}")
    status, _, page = _step(browser, "login page", "GET", to_login)
    token = _CSRF.search(page)
    if status != 200 or token is None:
        raise Failed("signin", status, f"login page: {status} {page[:200]!r}")
    next_url = parse_qs(urlsplit(to_login).query)["next"][0]
    form = urlencode({
        "csrfmiddlewaretoken": token.group(1).decode(), "email": email,
        "password": password, "next": next_url,
    })  # fmt: skip
    status, back, body = _step(browser, "password", "POST", to_login, form)
    if status != 302:
        raise Failed("signin", status, f"password: {status} {body[:200]!r}")
    status, to_client, body = _step(browser, "authorize after sign-in", "GET", back)
    answer = parse_qs(urlsplit(to_client).query)
    if status != 302 or answer.get("state") != [state] or "code" not in answer:
        raise Failed("signin", status, f"authorize after sign-in: {status} {to_client[:200]}")
    return answer["code"][0], verifier


def _step(
    browser: Browser, step: str, method: str, path: str, body: str = ""
) -> tuple[int, str, bytes]:
    """One request of the sign-in; a request without an answer names its step."""
    try:
        return browser.send(method, path, body)
    except (OSError, http.client.HTTPException) as error:
        raise OSError(f"sign-in step {step!r}: {error!r}") from error


def token_request(
    connection: http.client.HTTPConnection, kind: str, client: tuple[str, str], form: dict[str, str]
) -> dict[str, Any]:
    headers = {
        "Authorization": _basic(client),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    try:
        status, body = _call(connection, "POST", "/oauth/token", headers, urlencode(form))
    except (OSError, http.client.HTTPException) as error:
        raise OSError(f"{kind}: {error!r}") from error
    if status != 200:
        raise Failed(kind, status, f"{kind}: {status} {body[:200]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def userinfo(connection: http.client.HTTPConnection, access_token: str) -> int:
    status, _ = _call(
        connection, "GET", "/oauth/userinfo", {"Authorization": f"Bearer {access_token}"}
    )
    return status


def exchange(
    connection: http.client.HTTPConnection, client: tuple[str, str], code: str, verifier: str
) -> dict[str, Any]:
    return token_request(
        connection,
        "code_exchange",
        client,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
         "code_verifier": verifier},
    )  # fmt: skip


def virtual_user(job: Job) -> Outcome:
    """Picks operations by weight until stop_at; a sign-in or code exchange first, since the
    other user operations spend its tokens."""
    rng = random.Random(job.seed)  # noqa: S311 - picks operations, not secrets
    kinds = [kind for kind, _ in job.mix]
    weights = [weight for _, weight in job.mix]
    connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=30)
    outcome = Outcome(done={kind: [] for kind in KINDS})
    tokens: list[tuple[str, str]] = []  # (access, refresh)
    index = job.first_user
    cpu_start: float | None = None
    while (now := time.monotonic()) < job.stop_at:
        if cpu_start is None and now >= job.start_at:
            cpu_start = time.process_time()
        kind = rng.choices(kinds, weights)[0] if tokens else "signin"
        if kind == "userinfo" and not tokens:
            kind = "signin"
        began = time.monotonic()
        try:
            if kind == "signin":
                person = index % job.users
                index += job.stride
                code, verifier = sign_in(
                    connection, job.signin_client[0], f"scale-{person}@example.com",
                    f"{job.password}-{person}",
                )  # fmt: skip
                _record(outcome, job, "signin", began)
                began = time.monotonic()
                kind = "code_exchange"
                answer = exchange(connection, job.signin_client, code, verifier)
                tokens.append((answer["access_token"], answer["refresh_token"]))
                del tokens[:-TOKENS_KEPT]
            elif kind == "refresh":
                spent = tokens.pop(rng.randrange(len(tokens)))
                answer = token_request(
                    connection, kind, job.signin_client,
                    {"grant_type": "refresh_token", "refresh_token": spent[1]},
                )  # fmt: skip
                tokens.append((answer["access_token"], answer["refresh_token"]))
            elif kind == "client_credentials":
                token_request(
                    connection, kind, job.service_client, {"grant_type": "client_credentials"}
                )
            else:
                status = userinfo(connection, rng.choice(tokens)[0])
                if status != 200:
                    raise Failed(kind, status, f"userinfo: {status}")
        except Failed as failure:
            outcome.failures[f"{failure.kind}:{failure.status}"] += 1
            outcome.first_failure = outcome.first_failure or str(failure)
            continue
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            outcome.failures[f"{kind}:error"] += 1
            outcome.first_failure = outcome.first_failure or f"{kind}: {error!r}"
            continue
        _record(outcome, job, kind, began)
    if cpu_start is not None:
        outcome.cpu_s = time.process_time() - cpu_start
    connection.close()
    return outcome


def _record(outcome: Outcome, job: Job, kind: str, began: float) -> None:
    ended = time.monotonic()
    if job.start_at <= ended < job.stop_at:
        outcome.done[kind].append((ended, ended - began))


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    web: str  # which web processes the proxy port serves
    seconds: float
    outcomes: list[Outcome]
    cpu: dict[str, float]  # CPU seconds per component in the window
    round: int  # of the one/two alternation; 0 for the mixed phase
    loadavg: str  # the machine's load average (1 min) as the window began

    def rate(self, kind: str | None = None) -> float:
        kinds = KINDS if kind is None else (kind,)
        return sum(len(o.done[k]) for o in self.outcomes for k in kinds) / self.seconds

    def latencies(self, kind: str) -> list[float]:
        return sorted(seconds for o in self.outcomes for _, seconds in o.done[kind])

    def failures(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for outcome in self.outcomes:
            total.update(outcome.failures)
        return total

    def ops_per_web_cpu_s(self) -> float:
        """Operations per CPU second of the web processes: what a request costs them, which
        other load on the machine moves far less than the rate."""
        web = self.cpu.get("web1", 0.0) + self.cpu.get("web2", 0.0)
        return self.rate() * self.seconds / max(web, 1e-9)

    def requests_per_s(self) -> float:
        """HTTP requests: a sign-in is four (authorize, login page, password, authorize)."""
        return (
            sum(len(o.done[k]) * (4 if k == "signin" else 1) for o in self.outcomes for k in KINDS)
            / self.seconds
        )


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


@dataclass
class Revocation:
    web_ms: list[float]
    refused_before: bool  # a 401 seen before the revocation: the proof would be void


class Process:
    """A long-running child: own session (Ctrl-C reaches this script, which stops it),
    SIGTERM to its group at the end, pinned when `cpus` is given."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
        cpus: set[int] | None = None,
    ) -> None:  # fmt: skip
        self.name, self.argv, self.env, self.log_path, self.cpus = name, argv, env, log_path, cpus
        self.process: subprocess.Popen[bytes] | None = None

    def _preexec(self) -> None:
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        _die_with_parent()

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=self._preexec,
            )  # fmt: skip

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise BenchmarkError(f"{self.name} is not running:\n{tail}")

    def pids(self) -> list[int]:
        return _tree(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_with_reaped(pid: int) -> float:
    """CPU seconds of a process and of its children it has reaped (utime, stime, cutime,
    cstime): summed over a tree's live processes, a backend or prefork child that exits
    during a window still counts, in its parent's figure."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        return _call(connection, "GET", path, headers or {})
    finally:
        connection.close()


class ScaleOut:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = Path(tempfile.mkdtemp(prefix="tessera-scaleout-"))
        self.base.chmod(0o755)  # the postgres user (under root) must reach its folder inside
        self.backing: list[Any] = []
        self.cluster: Any = None
        self.children: list[Process] = []
        self.web: list[Process] = []
        self.phases: list[Phase] = []
        self.revocations: list[Revocation] = []
        self.audits: list[str] = []
        self.loadavg_before = "/".join(f"{v:.2f}" for v in os.getloadavg())
        self.django_ready = False
        self.finished = False
        cpus = sorted(os.sched_getaffinity(0))
        # Web process i on CPU i (as if each had a host); everything else floats.
        self.web_cpus = [{cpus[0]}, {cpus[1 % len(cpus)]}]

    # --- starting -----------------------------------------------------------------------

    def start_backing(self) -> None:
        from tests.servers import ClickHouseCluster, Postgres, Redis

        log("PostgreSQL, Redis, ZooKeeper and two ClickHouse shards")
        self.postgres, self.redis = Postgres(self.base), Redis(self.base)
        self.cluster = ClickHouseCluster(self.base / "clickhouse")
        self.backing = [self.postgres, self.redis]
        try:
            self.cluster.zookeeper.start()  # before ClickHouse (tests.servers says why)
            for server in [*self.backing, *self.cluster.nodes]:
                server.spawn()
            for server in [*self.backing, *self.cluster.nodes]:
                server.wait_ready()
        except Exception as error:  # tests.servers raises pytest.UsageError
            raise BenchmarkError(f"a server did not start: {error}") from None
        self._run(
            [str(self.postgres.bindir / "createdb"), "-h", "127.0.0.1",
             "-p", str(self.postgres.port), "-U", self.postgres.user, "tessera"],
            dict(os.environ), "createdb",
        )  # fmt: skip

    def environ(self) -> dict[str, str]:
        from tests.servers import _OWN_SETTINGS, ClickHouseCluster, free_port

        self.web_ports = [free_port(), free_port()]
        self.proxy_port, self.proxy_one_port = free_port(), free_port()
        token_file = self.base / "metrics-token"
        self.metrics_token = secrets.token_urlsafe(32)
        token_file.write_text(self.metrics_token)
        token_file.chmod(0o600)
        node = self.cluster.nodes[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_SETTINGS)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(
            DJANGO_SETTINGS_MODULE="idp.settings",
            DATABASE_URL=self.postgres.url(),
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
            CLICKHOUSE_URL=f"clickhouse://default:@127.0.0.1:{node.port}/{AUDIT_DATABASE}",
            IDP_CLICKHOUSE_CLUSTER=ClickHouseCluster.NAME,
            IDP_SECRET_KEY=secrets.token_urlsafe(64),
            IDP_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            IDP_DATA_DIR=str(self.base / "data"),  # one host: shared journal and metrics dirs
            IDP_ISSUER=f"http://127.0.0.1:{self.proxy_port}",
            IDP_TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32",
            IDP_WEB_WORKERS="1",
            IDP_LOG_LEVEL=self.args.log_level,
            IDP_METRICS_TOKEN_FILE=str(token_file),
        )
        # One load generator on one address: rate limits stay on (their Redis round trips are
        # part of the work) with budgets the run never reaches, as in oidc_endpoints.
        env.update({f"IDP_RATELIMIT_{name}": "10000000/1s" for name in BENCH_RATE_RULES})
        return env

    def _run(self, argv: list[str], env: dict[str, str], what: str) -> str:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def prepare(self, env: dict[str, str]) -> None:
        """Schema, ClickHouse tables on the cluster, and the clients and people, made here in
        this process with the services the admin commands use."""
        from clickhouse_driver import Client as ClickHouseClient

        from tests.servers import ClickHouseCluster

        log("migrate, collectstatic, audit_migrate --cluster")
        self._run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, "migrate")
        self._run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], env, "collectstatic")
        admin = ClickHouseClient("127.0.0.1", port=self.cluster.nodes[0].port)
        admin.execute(f"CREATE DATABASE IF NOT EXISTS {AUDIT_DATABASE} ON CLUSTER "
                      f"{ClickHouseCluster.NAME}")  # fmt: skip
        admin.disconnect()
        self._run(
            [PYTHON, "manage.py", "audit_migrate", "--cluster", ClickHouseCluster.NAME],
            env, "audit_migrate",
        )  # fmt: skip
        if not self.args.lazy_key_bootstrap:
            # The signing keys exist before the web processes start. Left to the lazy
            # bootstrap (apps/keys/keys.py _load), the first token requests of two processes
            # under load deadlocked the web tier in 3 of 9 runs (benchmarks/README.md).
            self._run(
                [PYTHON, "manage.py", "rotate_keys", "--scheduled"], env, "rotate_keys --scheduled"
            )
        os.environ.update(env)
        import django

        django.setup()
        self.django_ready = True
        from django.contrib.auth.hashers import make_password

        from apps.accounts.models import User
        from apps.tokens.services import client_create

        log(f"{self.args.users} people, a first-party client and a service client")
        first_party, secret = client_create(
            name="scale-out web app",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            skip_consent=True,
        )
        service, service_secret = client_create(
            name="scale-out service", redirect_uris=[], grant_types=["client_credentials"]
        )
        assert secret is not None
        assert service_secret is not None
        self.signin_client = (first_party.client_id, secret)
        self.service_client = (service.client_id, service_secret)
        # A password of their own each: one password signing many people in is what the
        # default threat rule sprayed_password_success answers with a second factor.
        started = time.monotonic()
        self.password = "scale-out passphrase " + secrets.token_urlsafe(12)
        people = [
            User(email=f"scale-{i}@example.com", password=make_password(f"{self.password}-{i}"))
            for i in range(self.args.users)
        ]
        people += [
            User(email=f"revoke-{i}@example.com",
                 password=make_password(f"{self.password}-revoke-{i}"))
            for i in range(self.args.revocations)
        ]  # fmt: skip
        User.objects.bulk_create(people, batch_size=1000)
        log(f"{len(people)} argon2id hashes in {time.monotonic() - started:.0f}s")
        from django.db import connections

        connections.close_all()

    def start_stack(self, env: dict[str, str]) -> None:
        from tests.mtls.nginx import nginx_binary

        log("two web processes, two workers, beat, nginx")
        for number, (port, cpus) in enumerate(zip(self.web_ports, self.web_cpus, strict=True), 1):
            process = Process(
                f"web{number}", [PYTHON, "-m", "idp.web"], {**env, "PORT": str(port)},
                self.base / f"web{number}.log", cpus,
            )  # fmt: skip
            self.web.append(process)
        celery = [PYTHON, "-m", "celery", "-A", "idp"]
        workers = [
            Process(
                f"worker{number}",
                [
                    *celery,
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "1",
                    "-n",
                    f"worker{number}@%h",
                ],
                env,
                self.base / f"worker{number}.log",
            )
            for number in (1, 2)
        ]
        beat = Process(
            "beat",
            [*celery, "beat", "--loglevel", "INFO", "--schedule", str(self.base / "beat-schedule")],
            env, self.base / "beat.log",
        )  # fmt: skip
        binary = nginx_binary()
        if binary is None:
            raise BenchmarkError("nginx is missing: scripts/ensure-system-packages.sh installs it")
        prefix = self.base / "nginx"
        prefix.mkdir()
        common = NGINX_COMMON.format(
            proxy_address=PROXY_ADDRESS, host=f"127.0.0.1:{self.proxy_port}"
        )
        (prefix / "nginx.conf").write_text(
            NGINX_CONFIG.format(
                prefix=prefix, web1=self.web_ports[0], web2=self.web_ports[1],
                port_both=self.proxy_port, port_one=self.proxy_one_port, common=common,
            )
        )  # fmt: skip
        self.nginx = Process(
            "nginx",
            [binary, "-p", str(prefix), "-e", str(prefix / "error.log"),
             "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            env, self.base / "nginx.log",
        )  # fmt: skip
        self.workers = [*workers, beat]
        self.children = [*self.web, *self.workers, self.nginx]
        for child in self.children:
            child.start()
        # /readyz through the proxy and on each web process: the database, Redis, ClickHouse
        # and a worker's heartbeat (beat's first) all answer.
        deadline = time.monotonic() + READY_TIMEOUT_S
        for port in [*self.web_ports, self.proxy_port, self.proxy_one_port]:
            last = ""
            while True:
                for child in self.children:
                    child.check()
                with contextlib.suppress(OSError, http.client.HTTPException):
                    status, body = _get(port, "/readyz")
                    if status == 200:
                        break
                    last = body[:500].decode(errors="replace")
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"127.0.0.1:{port}/readyz: not ready: {last}")
                time.sleep(0.2)

    # --- measuring ------------------------------------------------------------------------

    def components(self) -> dict[str, list[int]]:
        """Processes whose CPU time each phase reports, by component."""

        def tree(server: Any) -> list[int]:
            return _tree(server.process.pid) if server.process is not None else []

        components = {
            "web1": self.web[0].pids(),
            "web2": self.web[1].pids(),
            "nginx": self.nginx.pids(),
            "postgres": tree(self.postgres),
            "redis": tree(self.redis),
            "clickhouse": [p for node in self.cluster.nodes for p in tree(node)],
            "zookeeper": tree(self.cluster.zookeeper),
            "workers_beat": [p for child in self.workers for p in child.pids()],
            "this_script": [os.getpid()],
        }
        return components

    def cpu_now(self) -> dict[str, float]:
        return {
            name: sum(_cpu_with_reaped(pid) for pid in pids)
            for name, pids in self.components().items()
        }

    def drive(
        self, name: str, port: int, web: str, seconds: float, warmup: float, round_: int = 0
    ) -> Phase:
        """Virtual users through the proxy port for warmup + seconds; during the mixed
        phase, revocations are proven meanwhile from this process."""
        mix = tuple(self.args.mix)
        start = time.monotonic() + warmup + self.args.spawn_grace
        stop = start + seconds
        jobs = [
            Job(port, self.signin_client, self.service_client, self.password, self.args.users, i,
                self.args.concurrency, mix, start, stop, seed=hash((name, i)) & 0xFFFF)
            for i in range(self.args.concurrency)
        ]  # fmt: skip
        log(f"phase {name}: {self.args.concurrency} virtual users through 127.0.0.1:{port} "
            f"({web}), {warmup:.0f}s warm-up + {seconds:.0f}s")  # fmt: skip
        # Spawned, not forked: this process holds Django, its database connections and the
        # event journal's thread, none of which a load generator should inherit.
        with multiprocessing.get_context("spawn").Pool(self.args.concurrency) as pool:
            pending = pool.map_async(virtual_user, jobs)
            time.sleep(max(start - time.monotonic(), 0))
            cpu_before = self.cpu_now()
            loadavg = f"{os.getloadavg()[0]:.2f}"
            if name == "mixed":
                self.prove_revocations(stop)
            time.sleep(max(stop - time.monotonic(), 0))
            cpu_after = self.cpu_now()
            outcomes = pending.get(timeout=seconds + warmup + 300)
        cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
        cpu["load_driver"] = sum(outcome.cpu_s for outcome in outcomes)
        phase = Phase(name, web, seconds, outcomes, cpu, round_, loadavg)
        for child in self.children:
            child.check()
        rates = f"{phase.rate():.1f} operations/s, {phase.requests_per_s():.1f} requests/s"
        log(f"phase {name}: {rates}, failures {dict(phase.failures())}")
        return phase

    # --- proof 1: revocation -------------------------------------------------------------

    def prove_revocations(self, stop: float) -> None:
        """While the load runs: `--revocations` times, a person signs in through the proxy,
        their access token answers 200 on both web processes, their login session is ended
        with the service the admin API's revoke calls (apps.sessions.services.session_end),
        and each web process is polled directly until it answers 401."""
        count = self.args.revocations
        spacing = (stop - time.monotonic()) / (count + 1)
        for number in range(count):
            due = time.monotonic() + spacing * (0.5 if number == 0 else 1.0)
            time.sleep(max(due - time.monotonic(), 0))
            result = self.revoke_once(number)
            self.revocations.append(result)
            log(f"revocation {number + 1}: " + " ".join(
                f"web{i}_ms={ms:.1f}" for i, ms in enumerate(result.web_ms, 1)))  # fmt: skip

    def revoke_once(self, number: int) -> Revocation:
        from apps.sessions.models import LoginSession
        from apps.sessions.services import session_end

        proxy = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=30)
        try:
            code, verifier = sign_in(
                proxy, self.signin_client[0], f"revoke-{number}@example.com",
                f"{self.password}-revoke-{number}",
            )  # fmt: skip
            access = exchange(proxy, self.signin_client, code, verifier)["access_token"]
        except (Failed, OSError, http.client.HTTPException) as error:
            self.diagnose()
            raise BenchmarkError(f"the revocation probe's sign-in failed: {error!r}") from None
        finally:
            proxy.close()
        payload = access.split(".")[1]
        sid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
        connections = [
            http.client.HTTPConnection("127.0.0.1", port, timeout=30) for port in self.web_ports
        ]
        for connection, port in zip(connections, self.web_ports, strict=True):
            status = userinfo(connection, access)
            if status != 200:
                raise BenchmarkError(f"userinfo on 127.0.0.1:{port} before revoking: {status}")
        revoked_at = threading.Event()
        started = [0.0]
        results: list[float] = [float("inf")] * len(connections)
        early = [False]
        errors: list[str] = []
        asking = [threading.Event() for _ in connections]  # a poller's first 200 came back

        def poll(slot: int) -> None:
            connection = connections[slot]
            give_up = time.monotonic() + REVOCATION_GIVE_UP_S + 30
            try:
                while time.monotonic() < give_up:
                    was_revoked = revoked_at.is_set()
                    status = userinfo(connection, access)
                    answered = time.monotonic()
                    if status == 401:
                        early[0] = early[0] or (not was_revoked and not revoked_at.is_set())
                        results[slot] = answered - started[0]
                        return
                    if status != 200:
                        errors.append(f"userinfo on web{slot + 1} answered {status}")
                        return
                    asking[slot].set()
                    if revoked_at.is_set() and answered - started[0] > REVOCATION_GIVE_UP_S:
                        return
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"userinfo on web{slot + 1}: {error!r}")
            finally:
                asking[slot].set()

        pollers = [threading.Thread(target=poll, args=(slot,)) for slot in range(len(connections))]
        for poller in pollers:
            poller.start()
        for event in asking:  # both processes are being asked before the revocation
            event.wait(60)
        session = LoginSession.objects.get(id=sid)
        started[0] = time.monotonic()
        revoked_at.set()
        session_end(session=session, reason="api")
        for poller in pollers:
            poller.join()
        for connection in connections:
            connection.close()
        if errors:
            raise BenchmarkError(f"revocation {number + 1}: {'; '.join(errors)}")
        return Revocation([1000 * seconds for seconds in results], early[0])

    def diagnose(self) -> None:
        """What PostgreSQL is doing, into diagnosis.log (kept with the logs): a request
        without an answer is most often one waiting for a lock."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.pid, a.state, a.wait_event_type, a.wait_event, "
                "now() - a.xact_start, now() - a.query_start, pg_blocking_pids(a.pid), "
                "left(a.query, 300) FROM pg_stat_activity a "
                "WHERE a.state <> 'idle' AND a.pid <> pg_backend_pid() ORDER BY a.xact_start"
            )
            rows = cursor.fetchall()
        (self.base / "diagnosis.log").write_text("\n".join(map(repr, rows)) + "\n")
        log(f"PostgreSQL: {len(rows)} sessions not idle; see diagnosis.log")

    # --- proof 2: audit events ----------------------------------------------------------

    def scrape(self) -> dict[str, float]:
        """/metrics of web 1 (every process's counters on this host, merged): the sum of
        tessera_events_total and the audit backlog gauges."""
        from prometheus_client.parser import text_string_to_metric_families

        status, body = _get(
            self.web_ports[0], "/metrics", {"Authorization": f"Bearer {self.metrics_token}"}
        )
        if status != 200:
            raise BenchmarkError(f"/metrics answered {status}")
        values = {"events": 0.0, "journal_pending": -1.0, "outbox": -1.0}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "tessera_events_total":
                    values["events"] += sample.value
                    key = f"type:{sample.labels['event_type']}"
                    values[key] = values.get(key, 0.0) + sample.value
                elif sample.name == "tessera_audit_journal_pending_bytes":
                    values["journal_pending"] = sample.value
                elif sample.name == "tessera_audit_outbox_events":
                    values["outbox"] = sample.value
        return values

    def local_events(self) -> Counter[str]:
        """Events this process emitted (the revocations), by type: counted in its own
        registry."""
        from apps.core import metrics

        counted: Counter[str] = Counter()
        for family in metrics.LOCAL.collect():
            for sample in family.samples:
                if sample.name == "tessera_events_total":
                    counted[sample.labels["event_type"]] += int(sample.value)
        return counted

    def wait_drained(self) -> dict[str, float]:
        """Until the journals are drained into the outbox and the outbox shipped, by the
        gauges /metrics reports, twice in a row with no new event between."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        previous: dict[str, float] | None = None
        while True:
            now = self.scrape()
            empty = now["journal_pending"] == 0 and now["outbox"] == 0
            if empty and previous is not None and previous["events"] == now["events"]:
                return now
            previous = now if empty else None
            if time.monotonic() > deadline:
                raise BenchmarkError(f"the audit backlog did not drain: {now}")
            time.sleep(0.5)

    def audit(self, when: str, merges_stopped: bool) -> None:
        from clickhouse_driver import Client as ClickHouseClient

        started = time.monotonic()
        drained = self.wait_drained()
        waited = time.monotonic() - started
        by_type = self.local_events() - self.local_before
        for key, value in drained.items():
            if key.startswith("type:"):
                by_type[key[5:]] += int(value)
        emitted = sum(by_type.values())
        since = self.events_since
        second = f"toDateTime({int(since.timestamp())}, 'UTC')"
        where = (
            f"WHERE occurred_at > {second} "
            f"OR (occurred_at = {second} AND occurred_at_us >= {since.microsecond})"
        )
        shards = [
            ClickHouseClient("127.0.0.1", port=node.port, database=AUDIT_DATABASE)
            for node in self.cluster.nodes
        ]
        try:
            distinct, rows = shards[0].execute(
                f"SELECT uniqExact(id), count() FROM audit_events {where}"  # noqa: S608
            )[0]
            stored = dict(
                shards[0].execute(
                    f"SELECT event_type, uniqExact(id) FROM audit_events {where} "  # noqa: S608
                    "GROUP BY event_type"
                )
            )
            per_shard = [
                client.execute(
                    f"SELECT uniqExact(id), count() FROM audit_events_local {where}"  # noqa: S608
                )[0]
                for client in shards
            ]
        finally:
            for client in shards:
                client.disconnect()
        on_both = sum(shard[0] for shard in per_shard) - distinct
        line = (
            f"audit after={when} emitted={emitted} clickhouse_distinct={distinct} "
            f"clickhouse_rows={rows} duplicates={rows - distinct} missing={emitted - distinct} "
            f"ids_on_two_shards={on_both} "
            + " ".join(f"shard{i}_rows={shard[1]}" for i, shard in enumerate(per_shard, 1))
            + f" merges={'stopped' if merges_stopped else 'running'} drain_wait_s={waited:.1f}"
        )
        differ = {
            kind: by_type.get(kind, 0) - stored.get(kind, 0)
            for kind in sorted(set(by_type) | set(stored))
            if by_type.get(kind, 0) != stored.get(kind, 0)
        }
        if differ:  # by event type: counted minus stored
            line += " differ=" + ",".join(f"{kind}:{n:+d}" for kind, n in differ.items())
        self.audits.append(line)
        log(line)

    def merges(self, action: str) -> None:
        from clickhouse_driver import Client as ClickHouseClient

        for node in self.cluster.nodes:
            client = ClickHouseClient("127.0.0.1", port=node.port, database=AUDIT_DATABASE)
            try:
                client.execute(f"SYSTEM {action} MERGES audit_events_local")
            finally:
                client.disconnect()

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> None:
        began = time.monotonic()
        self.start_backing()
        env = self.environ()
        self.prepare(env)
        # Every event from here on comes from a process whose counters /metrics sums (the web
        # processes, workers and beat start after this) or from this one (local_events, less
        # what it counted before: the clients it registered).
        self.events_since = datetime.now(UTC)
        self.local_before = self.local_events()
        self.start_stack(env)
        log(f"stack ready after {time.monotonic() - began:.0f}s")
        # Merges stopped: a shipped-twice event stays two rows, so `duplicates` can see it.
        self.merges("STOP")
        try:
            duration = self.args.duration
            self.phases.append(
                self.drive("mixed", self.proxy_port, "web1+web2", duration, self.args.warmup)
            )
            self.audit("mixed", merges_stopped=True)
        finally:
            self.merges("START")
        # One web process, then two, alternated: drift in what else the machine runs falls
        # on both alike.
        seconds = self.args.throughput_duration
        for round_ in range(1, self.args.rounds + 1):
            for name, port, web in (
                ("one_web", self.proxy_one_port, "web1"),
                ("two_web", self.proxy_port, "web1+web2"),
            ):
                self.phases.append(self.drive(name, port, web, seconds, self.args.warmup, round_))
        self.audit("all", merges_stopped=False)
        self.report(time.monotonic() - began)
        self.finished = True

    def stop(self) -> None:
        if self.django_ready:
            from django.db import connections

            from apps.core import journal

            journal.shutdown()
            connections.close_all()
        for child in reversed(self.children):
            child.stop()
        for server in self.backing:
            server.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if not self.finished:  # the servers' logs say why; the rest goes
            kept = Path(self.args.logs_dir) / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            kept.mkdir(parents=True, exist_ok=True)
            for path in [*self.base.glob("*.log"), *self.base.glob("nginx/*.log")]:
                shutil.copy(path, kept / path.name)
            log(f"the logs of the stack are kept in {kept}")
        shutil.rmtree(self.base, ignore_errors=True)

    # --- output -------------------------------------------------------------------------------

    def report(self, elapsed: float) -> None:
        import django

        loadavg_after = "/".join(f"{v:.2f}" for v in os.getloadavg())
        print(
            f"machine nproc={os.cpu_count()} cpu_model={json.dumps(cpu_model())} "
            f"python={platform.python_version()} django={django.get_version()} "
            f"web1_cpus={','.join(map(str, sorted(self.web_cpus[0])))} "
            f"web2_cpus={','.join(map(str, sorted(self.web_cpus[1])))} others=any "
            f"loadavg_before={self.loadavg_before} loadavg_after={loadavg_after}"
        )
        mix = ",".join(f"{kind}={weight}" for kind, weight in self.args.mix)
        print(
            f"config duration_s={self.args.duration:.0f} warmup_s={self.args.warmup:.0f} "
            f"throughput_duration_s={self.args.throughput_duration:.0f} rounds={self.args.rounds} "
            f"concurrency={self.args.concurrency} users={self.args.users} mix={mix} "
            f"web_processes=2 web_workers_each=1 celery_workers=2 beat=1 "
            f"clickhouse_shards=2 elapsed_s={elapsed:.0f}"
        )
        for phase in self.phases:
            for kind in KINDS:
                latencies = phase.latencies(kind)
                print(
                    f"traffic phase={phase.name} round={phase.round} kind={kind} "
                    f"rps={phase.rate(kind):.1f} p50_ms={1000 * _percentile(latencies, 50):.1f} "
                    f"p99_ms={1000 * _percentile(latencies, 99):.1f} count={len(latencies)}"
                )
            failures = phase.failures()
            first = next((o.first_failure for o in phase.outcomes if o.first_failure), "")
            listed = " ".join(
                f"failed_{k.replace(':', '_')}={n}" for k, n in sorted(failures.items())
            )
            print(
                f"phase phase={phase.name} round={phase.round} web={phase.web} "
                f"ops_per_s={phase.rate():.1f} requests_per_s={phase.requests_per_s():.1f} "
                f"ops_per_web_cpu_s={phase.ops_per_web_cpu_s():.1f} loadavg_1m={phase.loadavg} "
                f"non2xx={sum(failures.values())} {listed or 'failed=none'}"
                + (f" first_failure={json.dumps(first)}" if first else "")
            )
            print(
                f"cpu phase={phase.name} round={phase.round} "
                + " ".join(
                    f"{name}_pct={100 * seconds / phase.seconds:.0f}"
                    for name, seconds in phase.cpu.items()
                )
            )
        for number, revocation in enumerate(self.revocations, 1):
            within = all(ms <= 1000 * REVOCATION_BOUND_S for ms in revocation.web_ms)
            print(
                f"revocation n={number} "
                + " ".join(f"web{i}_ms={ms:.1f}" for i, ms in enumerate(revocation.web_ms, 1))
                + f" within_1s={'yes' if within and not revocation.refused_before else 'no'}"
                + (" refused_before_revocation=yes" if revocation.refused_before else "")
            )
        if self.revocations:
            worst = [max(r.web_ms[i] for r in self.revocations) for i in range(2)]
            within = max(worst) <= 1000 * REVOCATION_BOUND_S and not any(
                r.refused_before for r in self.revocations
            )
            print(
                f"revocation max web1_ms={worst[0]:.1f} web2_ms={worst[1]:.1f} "
                f"within_1s={'yes' if within else 'no'} repeats={len(self.revocations)}"
            )
        for line in self.audits:
            print(line)
        ones = [phase for phase in self.phases if phase.name == "one_web"]
        twos = [phase for phase in self.phases if phase.name == "two_web"]
        for one, two in zip(ones, twos, strict=True):
            print(
                f"throughput round={one.round} one_web_ops_per_s={one.rate():.1f} "
                f"two_web_ops_per_s={two.rate():.1f} ratio={two.rate() / max(one.rate(), 1e-9):.2f}"
            )
        if ones and twos:
            one_rate = sum(p.rate() for p in ones) / len(ones)
            two_rate = sum(p.rate() for p in twos) / len(twos)
            one_requests = sum(p.requests_per_s() for p in ones) / len(ones)
            two_requests = sum(p.requests_per_s() for p in twos) / len(twos)
            print(
                f"throughput rounds={len(ones)} one_web_ops_per_s={one_rate:.1f} "
                f"two_web_ops_per_s={two_rate:.1f} ratio={two_rate / max(one_rate, 1e-9):.2f} "
                f"one_web_requests_per_s={one_requests:.1f} "
                f"two_web_requests_per_s={two_requests:.1f} "
                f"requests_ratio={two_requests / max(one_requests, 1e-9):.2f}"
            )


def _mix(text: str) -> list[tuple[str, int]]:
    pairs = []
    for item in text.split(","):
        kind, _, weight = item.partition("=")
        if kind not in ("signin", "refresh", "client_credentials", "userinfo"):
            raise argparse.ArgumentTypeError(f"unknown operation {kind!r} in --mix")
        if not weight.isdigit():
            raise argparse.ArgumentTypeError(f"{item!r}: a weight is a whole number")
        pairs.append((kind, int(weight)))
    if not any(weight for _, weight in pairs):
        raise argparse.ArgumentTypeError("--mix needs a weight above 0")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=90, help="seconds of the mixed phase (revocations)"
    )
    parser.add_argument(
        "--throughput-duration", type=float, default=45, help="seconds of each 1-vs-2 phase"
    )
    parser.add_argument("--rounds", type=int, default=2, help="1-vs-2 alternations")
    parser.add_argument("--warmup", type=float, default=10, help="seconds before each window")
    parser.add_argument("--concurrency", type=int, default=8, help="virtual users (processes)")
    parser.add_argument("--users", type=int, default=200, help="people signed in in turn")
    parser.add_argument("--revocations", type=int, default=5, help="revocations proven")
    parser.add_argument("--mix", type=_mix, default=_mix(DEFAULT_MIX), help=DEFAULT_MIX)
    parser.add_argument("--quick", action="store_true", help="a 2-3 minute smoke run")
    parser.add_argument(
        "--lazy-key-bootstrap",
        action="store_true",
        help="no `rotate_keys --scheduled` before the stack: the web processes create the "
        "signing keys on their first token requests (reproduces a deadlock)",
    )
    parser.add_argument(
        "--logs-dir", default="var/scale-out-logs", help="where the logs go when a run fails"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args(argv)
    args.spawn_grace = 3.0  # seconds for the spawned virtual users to import and connect
    if args.quick:
        args.duration, args.throughput_duration, args.warmup = 15, 10, 3
        args.users, args.revocations, args.rounds = 50, 3, 1
    return run_benchmark(ScaleOut(args))


if __name__ == "__main__":
    sys.exit(main())
