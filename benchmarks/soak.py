"""A mixed-load soak: is every process flat after warm-up?

    .venv/bin/python -m benchmarks.soak --target embedded --duration 1800
    .venv/bin/python -m benchmarks.soak --target postgres --duration 1800 --csv var/soak.csv
    .venv/bin/python -m benchmarks.soak --help    # --interval, --warmup, --concurrency, ...

Issue 20's long run: a mixed load for `--duration` seconds on the embedded default (`python -m
idp.serve` with no DATABASE_URL or REDIS_URL: SQLite and the bundled Redis, the process tree
of `make run`) or on PostgreSQL + Redis (tests.servers; the production web server `python -m
idp.web`, a Celery worker and Celery beat, each its own process as deploy/ runs them).
Virtual users (threads) each repeat: a hosted sign-in as a new browser (authorize → login
page → password with its CSRF token → code), the code exchanged with PKCE, userinfo,
introspection, `--refreshes` refreshes (each followed by userinfo), and a client_credentials
token. Every `--interval` seconds it samples every process of the tree by role (RSS, USS, open
file descriptors, TCP and unix-socket connections), PostgreSQL's pg_stat_activity, and the
window's requests, p50/p99 and 5xx. It ends with the curve's summary and one verdict line per
criterion of the issue (benchmarks/README.md, "Soak"). Exit status: 0 every criterion met,
1 one not met, 2 the soak could not run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import psutil

from benchmarks.oidc_endpoints import (
    BENCH_RATE_RULES,
    PYTHON,
    ROOT,
    BenchmarkError,
    _die_with_parent,
    _run,
    cpu_model,
    log,
    request,
    start_servers,
)
from benchmarks.signin import _CSRF, REDIRECT_URI

START_TIMEOUT = 120.0
STOP_GRACE = 30.0
RSS_GROWTH_LIMIT_PCT = 5.0  # issue 20: RSS growth < 5 % after warm-up
P99_STEADY_RATIO = 1.5  # the last stretch's p99 at most this many times the first's
SCOPES = "openid profile email offline_access"
STEPS = (
    "authorize", "login_page", "login_post", "authorize_code", "code_exchange", "userinfo",
    "introspect", "refresh", "client_credentials",
)  # fmt: skip

# The people and clients, made in the server's database with the server's settings.
_FIXTURES = """
import json, sys
import django
django.setup()
from django.contrib.auth.hashers import make_password
from apps.accounts.models import User
from apps.tokens.services import client_create, consent_grant
redirect_uri, count, password, scopes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
service, service_secret = client_create(
    name="soak service", redirect_uris=[], grant_types=["client_credentials"])
# First party (skip_consent, as `createclient --skip-consent`); each person has allowed it
# offline_access (OIDC Core 11), so the code exchange also gives a refresh token.
webapp, webapp_secret = client_create(
    name="soak web app", redirect_uris=[redirect_uri],
    grant_types=["authorization_code", "refresh_token"], skip_consent=True)
# A password each: one password tried on many accounts is a spraying signal (apps/threat).
User.objects.bulk_create([
    User(email=f"soak-{i}@example.com", password=make_password(f"{password} {i}"))
    for i in range(count)])
for user in User.objects.filter(email__startswith="soak-"):
    consent_grant(user_id=user.pk, client=webapp, scopes=scopes.split())
print(json.dumps({"service": [service.client_id, service_secret],
                  "webapp": [webapp.client_id, webapp_secret]}))
"""


# --- the load -------------------------------------------------------------------------------


class StepFailed(Exception):
    pass


@dataclass
class Recorder:
    """Every request's (end time, step, status, seconds); status 0 is no answer."""

    records: list[tuple[float, str, int, float]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    first_failures: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, step: str, status: int, seconds: float) -> None:
        with self.lock:
            self.records.append((time.monotonic(), step, status, seconds))

    def fail(self, step: str, message: str) -> None:
        with self.lock:
            self.failures[step] += 1
            self.first_failures.setdefault(step, message[:300])


class Browser:
    """A browser without cookies on one connection (benchmarks/signin.py's, plus headers):
    cookies by name, relative redirects, and the address a trusted proxy forwards."""

    def __init__(self, connection: http.client.HTTPConnection, address: str) -> None:
        self.connection = connection
        self.cookies: dict[str, str] = {}
        self.headers = {
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "X-Forwarded-For": address,
        }

    def send(self, method: str, path: str, body: str = "") -> tuple[int, str, bytes]:
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body or None, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            if value.strip('"'):
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return response.status, response.headers.get("Location", ""), content


def person_address(index: int) -> str:
    """Each person signs in from an address of their own, in a /16 of their own: the threat
    engine counts accounts per address and per network (apps/threat/scoring.py), and a soak
    from one address is a credential-stuffing run, answered with a second factor."""
    return f"10.{index % 250}.{index // 250 % 250}.7"


def _basic(client: list[str]) -> str:
    return "Basic " + base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()


class VirtualUser(threading.Thread):
    def __init__(self, index: int, soak: Soak) -> None:
        super().__init__(name=f"vu-{index}", daemon=True)
        self.index = index
        self.soak = soak
        self.api = http.client.HTTPConnection("127.0.0.1", soak.port, timeout=30)

    def timed(self, step: str, call: Any, wanted: int) -> tuple[int, str, bytes]:
        began = time.monotonic()
        try:
            status, location, body = call()
        except (OSError, http.client.HTTPException) as error:
            self.soak.recorder.add(step, 0, time.monotonic() - began)
            raise StepFailed(f"{step}: {type(error).__name__}: {error}") from None
        self.soak.recorder.add(step, status, time.monotonic() - began)
        if status != wanted:
            raise StepFailed(f"{step}: status {status}, not {wanted}: {body[:200]!r}")
        return status, location, body

    def api_call(
        self, step: str, method: str, path: str, auth: str, body: str = ""
    ) -> dict[str, Any]:
        headers = {"Authorization": auth}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"

        def call() -> tuple[int, str, bytes]:
            try:
                self.api.request(method, path, body=body or None, headers=headers)
                response = self.api.getresponse()
                return response.status, "", response.read()
            except (OSError, http.client.HTTPException):
                self.api.close()  # reconnects on the next request
                raise

        _, _, content = self.timed(step, call, 200)
        document: dict[str, Any] = json.loads(content)
        return document

    def sign_in(self, person: int) -> dict[str, Any]:
        """Hosted sign-in as a new browser (no cookies, its own connection), then the code
        exchanged with its PKCE verifier (RFC 7636)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.soak.port, timeout=30)
        try:
            browser = Browser(connection, person_address(person))
            verifier = secrets.token_urlsafe(48)
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            state = secrets.token_urlsafe(12)
            query = urlencode({
                "response_type": "code", "client_id": self.soak.webapp[0],
                "redirect_uri": REDIRECT_URI, "scope": SCOPES, "state": state,
                "nonce": secrets.token_urlsafe(12),
                "code_challenge": digest.rstrip(b"=").decode(), "code_challenge_method": "S256",
            })  # fmt: skip
            _, to_login, _ = self.timed(
                "authorize", lambda: browser.send("GET", f"/oauth/authorize?{query}"), 302
            )
            _, _, page = self.timed("login_page", lambda: browser.send("GET", to_login), 200)
            token = _CSRF.search(page)
            if token is None:
                raise StepFailed("login_page: no CSRF token")
            form = urlencode({
                "csrfmiddlewaretoken": token.group(1).decode(),
                "email": f"soak-{person}@example.com",
                "password": f"{self.soak.password} {person}",
                "next": parse_qs(urlsplit(to_login).query)["next"][0],
            })  # fmt: skip
            _, back, _ = self.timed("login_post", lambda: browser.send("POST", to_login, form), 302)
            _, to_client, _ = self.timed("authorize_code", lambda: browser.send("GET", back), 302)
        finally:
            connection.close()
        answer = parse_qs(urlsplit(to_client).query)
        if answer.get("state") != [state] or "code" not in answer:
            raise StepFailed(f"authorize_code: answered {to_client[:200]}")
        exchange = urlencode({
            "grant_type": "authorization_code", "code": answer["code"][0],
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
        })  # fmt: skip
        tokens = self.api_call(
            "code_exchange", "POST", "/oauth/token", _basic(self.soak.webapp), exchange
        )
        if "refresh_token" not in tokens:
            raise StepFailed(f"code_exchange: no refresh token: {sorted(tokens)}")
        return tokens

    def iteration(self, person: int) -> None:
        soak = self.soak
        tokens = self.sign_in(person)
        bearer = f"Bearer {tokens['access_token']}"
        if not self.api_call("userinfo", "GET", "/oauth/userinfo", bearer).get("sub"):
            raise StepFailed("userinfo: no sub")
        introspect = urlencode({"token": tokens["access_token"]})
        answer = self.api_call(
            "introspect", "POST", "/oauth/introspect", _basic(soak.service), introspect
        )
        if answer.get("active") is not True:
            raise StepFailed(f"introspect: {answer}")
        refresh_token = tokens["refresh_token"]
        for _ in range(soak.args.refreshes):
            body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})
            tokens = self.api_call("refresh", "POST", "/oauth/token", _basic(soak.webapp), body)
            refresh_token = tokens["refresh_token"]  # RFC 9700 §4.14.2: rotated on every use
            bearer = f"Bearer {tokens['access_token']}"
            self.api_call("userinfo", "GET", "/oauth/userinfo", bearer)
        self.api_call(
            "client_credentials", "POST", "/oauth/token", _basic(soak.service),
            "grant_type=client_credentials",
        )  # fmt: skip

    def run(self) -> None:
        soak, turn = self.soak, self.index
        while not soak.stopping.is_set():
            person = turn % soak.args.users
            turn += soak.args.concurrency
            try:
                self.iteration(person)
            except StepFailed as error:
                step = str(error).split(":", 1)[0]
                soak.recorder.fail(step, str(error))
            except (ValueError, KeyError) as error:  # a body that is not the JSON expected
                soak.recorder.fail("body", f"{type(error).__name__}: {error}")
        self.api.close()


# --- the process tree -----------------------------------------------------------------------


@dataclass
class ProcessSample:
    t: float
    role: str
    pid: int
    rss: int
    uss: int
    fds: int
    tcp: int
    unix: int
    cpu: float  # user + system seconds of its life so far
    threads: int


def _cmdline(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""


class Roles:
    """Names each process of the tree by what it is, once per process. The embedded
    default's beat runs forked from the worker (`celery worker -B`), with the pool's command
    line: the worker's children that its pool does not list (`pool_pids`) are beat."""

    def __init__(self, pool_pids: set[int] | None, beat_forked: bool) -> None:
        self.pool_pids = pool_pids
        self.beat_forked = beat_forked
        self.known: dict[tuple[int, float], str] = {}

    def role(self, process: psutil.Process) -> str:
        key = (process.pid, process.create_time())
        if key not in self.known:
            self.known[key] = self._role(process)
        return self.known[key]

    def _role(self, process: psutil.Process) -> str:
        name, command = process.name(), _cmdline(process)
        parent = process.parent()
        parent_command = _cmdline(parent) if parent is not None else ""
        if name == "postgres" or command.startswith("postgres:"):
            return "postgres"
        if "redis-server" in name or "redis-server" in command:
            return "redis"
        if "idp.serve" in command:
            return "runner"
        if "granian" in command or "idp.web" in command:
            return "web_worker" if "granian" in parent_command else "web"
        if "celery" in command:
            if " beat" in command and " worker" not in command:
                return "beat"
            if " worker" in parent_command and "celery" in parent_command:
                if not self.beat_forked:
                    return "worker_pool"
                if self.pool_pids is None:
                    return "worker_child"  # the pool, or beat: the worker did not say
                return "worker_pool" if process.pid in self.pool_pids else "beat"
            return "worker"
        return "other"


def celery_pool_pids(env: dict[str, str]) -> set[int] | None:
    """The worker's pool processes, as the worker itself reports them (`inspect stats`)."""
    done = subprocess.run(
        [PYTHON, "-m", "celery", "-A", "idp", "inspect", "stats", "--json", "--timeout", "10"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        nodes = json.loads(done.stdout.strip().splitlines()[-1])
        return {int(pid) for node in nodes.values() for pid in node["pool"]["processes"]}
    except (ValueError, IndexError, KeyError, TypeError, AttributeError):
        log(f"celery inspect stats answered no pool: {done.stdout[-300:]}{done.stderr[-300:]}")
        return None


def sample_tree(root: psutil.Process, roles: Roles, t: float) -> list[ProcessSample]:
    samples = []
    for process in root.children(recursive=True):
        try:
            with process.oneshot():
                role = roles.role(process)
                if role == "other":
                    continue
                memory = process.memory_full_info()
                samples.append(
                    ProcessSample(
                        t, role, process.pid, memory.rss, memory.uss, process.num_fds(),
                        len(process.net_connections(kind="tcp")),
                        len(process.net_connections(kind="unix")),
                        sum(process.cpu_times()[:2]), process.num_threads(),
                    )
                )  # fmt: skip
        except psutil.Error:  # ended between the listing and the sample
            continue
    return samples


@dataclass
class Window:
    t: float  # seconds since the load began, at the window's end
    requests: int
    p50_ms: float
    p99_ms: float
    status_5xx: int
    no_answer: int
    pg_activity: int  # -1: no PostgreSQL
    redis_keys: int
    redis_no_ttl: int  # keys that never expire
    roles: dict[str, dict[str, int]]  # role → processes, rss, uss, fds, tcp, unix (summed)
    cpu_s: float  # CPU seconds every sampled process used in the window
    loadavg: float  # the machine's 1-minute load average at the window's end
    step_p50_ms: dict[str, float]


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _kill_leftovers(pids: dict[int, tuple[float, str]]) -> list[str]:
    """SIGKILL to processes of the tree that outlived their stop (same pid, same birth);
    returns their roles."""
    left = []
    for pid, (born, role) in pids.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            # A zombie has ended and holds nothing: the embedded beat's, when the worker that
            # forked it exits first and the container's pid 1 does not reap orphans.
            if process.create_time() == born and process.status() != psutil.STATUS_ZOMBIE:
                log(f"{role} pid {pid} ({_cmdline(process)[:120]}) outlived the stop: killing it")
                process.kill()
                left.append(role)
    return left


# --- the soak -------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, target: str) -> None:
        self.args = args
        self.target = target
        self.base = Path(tempfile.mkdtemp(prefix=f"tessera-soak-{target}-"))
        self.base.chmod(0o755)  # the postgres user (under root) must reach its folder inside
        self.data_dir = self.base / "data"
        self.password = "soak passphrase " + secrets.token_urlsafe(12)
        self.recorder = Recorder()
        self.stopping = threading.Event()
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.backing: list[Any] = []
        self.pg: Any = None
        self.seen: dict[int, tuple[float, str]] = {}  # every pid sampled: birth, role
        self.outlived: list[str] = []  # roles of processes the stop had to kill
        self.exit_codes: dict[str, int | str] = {}
        self.windows: list[Window] = []
        self.process_samples: list[ProcessSample] = []
        self.port = 0
        self.began_at = 0.0
        self.roles = Roles(None, beat_forked=False)
        self.cpu_seen: dict[int, float] = {}
        self.kv: Any = None  # a client of the Redis Tessera uses
        self.census: list[tuple[str, int]] = []
        self.loadavg_before = self.loadavg_after = ""
        self.service: list[str] = []
        self.webapp: list[str] = []

    # environments

    def environment(self) -> dict[str, str]:
        from tests.servers import _OWN_SETTINGS, free_port

        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith((*_OWN_SETTINGS, "DATABASE_URL", "REDIS_URL", "CELERY_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="idp.settings",
            IDP_DATA_DIR=str(self.data_dir),
            PORT=str(self.port),
            IDP_LOG_LEVEL=self.args.log_level,
            # The virtual browsers' addresses arrive as X-Forwarded-For (person_address), as
            # behind a reverse proxy.
            IDP_TRUSTED_PROXIES="127.0.0.1/32",
        )
        # The relying parties' calls all come from this address: rate limits stay on (their
        # Redis round trips are part of the load) with budgets the soak never reaches, as in
        # oidc_endpoints.
        env.update({f"IDP_RATELIMIT_{name}": "10000000/1s" for name in BENCH_RATE_RULES})
        if self.target == "postgres":
            env.update(
                DATABASE_URL=self.postgres.url(),
                REDIS_URL=self.redis.url(0),
                CELERY_BROKER_URL=self.redis.url(1),
                IDP_SECRET_KEY=secrets.token_urlsafe(64),
                IDP_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            )
        return env

    def start_child(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.base / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches us only
                preexec_fn=_die_with_parent,  # SIGTERM if this script is killed outright
            )  # fmt: skip
        self.children.append((name, process))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for name, process in self.children:
                if process.poll() is not None:
                    raise BenchmarkError(f"{name} exited ({process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchmarkError(f"not ready after {START_TIMEOUT:.0f}s:\n{self.tail()}")
            with contextlib.suppress(OSError):
                status, body = request(self.port, "GET", "/readyz")
                if status == 200 and json.loads(body).get("status") == "ready":
                    return
            time.sleep(0.2)

    def tail(self) -> str:
        return "\n".join(
            f"--- {log_file.name}\n{log_file.read_text(errors='replace')[-1500:]}"
            for log_file in sorted(self.base.glob("*.log"))
        )

    def start(self) -> dict[str, str]:
        if self.target == "embedded":
            env = self.environment()
            log(f"embedded: python -m idp.serve (SQLite + bundled Redis) in {self.data_dir}")
            self.start_child("serve", [PYTHON, "-m", "idp.serve"], env)
        else:
            from tests.servers import Postgres, Redis

            self.postgres, self.redis = Postgres(self.base), Redis(self.base)
            self.backing = [self.postgres, self.redis]
            start_servers(self.backing)
            env = self.environment()
            log("postgres: migrate + collectstatic")
            _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, "migrate")
            _run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], env, "collectstatic")
            celery = [PYTHON, "-m", "celery", "-A", "idp"]
            self.data_dir.mkdir(parents=True, exist_ok=True)
            schedule = str(self.data_dir / "celerybeat-schedule")
            log("postgres: python -m idp.web, celery worker, celery beat (as deploy/ runs them)")
            self.start_child("web", [PYTHON, "-m", "idp.web"], env)
            self.start_child("worker", [*celery, "worker", "--loglevel", "WARNING"], env)
            self.start_child(
                "beat", [*celery, "beat", "--loglevel", "WARNING", "--schedule", schedule], env
            )
            import psycopg

            self.pg = psycopg.connect(self.postgres.url(), autocommit=True)
        self.wait_ready()
        log("ready; making people and clients")
        made = json.loads(
            _run(
                [PYTHON, "-c", _FIXTURES, REDIRECT_URI, str(self.args.users), self.password,
                 SCOPES],
                env, "fixtures",
            ).strip().splitlines()[-1]
        )  # fmt: skip
        self.service, self.webapp = made["service"], made["webapp"]
        if self.target == "embedded":
            self.roles = Roles(celery_pool_pids(env), beat_forked=True)
        else:
            self.roles = Roles(None, beat_forked=False)
        self.kv = self.redis_client()
        return env

    def redis_client(self) -> Any:
        from redis import Redis

        if self.target == "embedded":
            socket_path = self.data_dir / "redis" / "redis.sock"  # settings.EMBEDDED_REDIS_SOCKET
            return Redis(unix_socket_path=str(socket_path), socket_timeout=5)
        return Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5)

    def redis_keys(self) -> tuple[int, int]:
        """(keys, keys without a TTL) over every database of the Redis Tessera uses."""
        keyspace = self.kv.info("keyspace")
        keys = sum(int(db["keys"]) for db in keyspace.values())
        return keys, keys - sum(int(db["expires"]) for db in keyspace.values())

    def redis_census(self) -> list[tuple[str, int]]:
        """Keys without a TTL by database and name prefix (up to the first ':' or the
        first 24 characters), most first: what a Redis that only grows is made of."""
        counts: Counter[str] = Counter()
        for name in self.kv.info("keyspace"):
            client = self.redis_client()
            client.select(int(name.removeprefix("db")))
            for key in client.scan_iter(count=1000):
                if client.ttl(key) == -1:
                    text = key.decode(errors="replace")
                    counts[f"{name}:{text.split(':', 1)[0][:24]}"] += 1
            client.close()
        return counts.most_common(8)

    def pg_activity(self) -> int:
        if self.pg is None:
            return -1
        row = self.pg.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0]) if row else 0

    def sample(self, root: psutil.Process, roles: Roles, began: float, since: int) -> int:
        """One sample: the processes, and the requests that ended since index `since`."""
        t = time.monotonic() - began
        processes = sample_tree(root, roles, t)
        for p in processes:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(p.pid, (psutil.Process(p.pid).create_time(), p.role))
        self.process_samples += processes
        # A process born in the window counts from zero (the baseline is taken at t=0).
        cpu_s = sum(p.cpu - self.cpu_seen.get(p.pid, 0.0) for p in processes)
        self.cpu_seen = {p.pid: p.cpu for p in processes}
        with self.recorder.lock:
            records = self.recorder.records[since:]
            until = len(self.recorder.records)
        seconds = [r[3] for r in records]
        summed: dict[str, dict[str, int]] = {}
        for p in processes:
            role = summed.setdefault(
                p.role,
                {"processes": 0, "rss": 0, "uss": 0, "fds": 0, "tcp": 0, "unix": 0, "threads": 0},
            )
            role["processes"] += 1
            for key in ("rss", "uss", "fds", "tcp", "unix", "threads"):
                role[key] += getattr(p, key)
        redis_keys, redis_no_ttl = self.redis_keys()
        window = Window(
            t=t,
            redis_keys=redis_keys,
            redis_no_ttl=redis_no_ttl,
            requests=len(records),
            p50_ms=1000 * _percentile(seconds, 50),
            p99_ms=1000 * _percentile(seconds, 99),
            status_5xx=sum(1 for r in records if r[2] >= 500),
            no_answer=sum(1 for r in records if r[2] == 0),
            pg_activity=self.pg_activity(),
            roles=summed,
            cpu_s=cpu_s,
            loadavg=os.getloadavg()[0],
            step_p50_ms={
                step: 1000 * _percentile([r[3] for r in records if r[1] == step], 50)
                for step in STEPS
            },
        )
        self.windows.append(window)
        memory = " ".join(f"{role}={summed[role]['rss'] / 2**20:.0f}" for role in sorted(summed))
        log(
            f"{self.target} t={t:.0f}s requests={window.requests} "
            f"rps={window.requests / self.args.interval:.1f} p50_ms={window.p50_ms:.0f} "
            f"p99_ms={window.p99_ms:.0f} 5xx={window.status_5xx} "
            f"cpu_ms_per_req={1000 * cpu_s / max(window.requests, 1):.1f} "
            f"load={window.loadavg:.1f} redis_keys={redis_keys}/{redis_no_ttl} "
            f"failures={sum(self.recorder.failures.values())} rss_mib {memory}"
            + (f" pg_activity={window.pg_activity}" if window.pg_activity >= 0 else "")
        )
        return until

    def run(self) -> None:
        self.loadavg_before = "/".join(f"{v:.2f}" for v in os.getloadavg())
        self.start()
        root = psutil.Process()
        users = [VirtualUser(i, self) for i in range(self.args.concurrency)]
        self.cpu_seen = {p.pid: p.cpu for p in sample_tree(root, self.roles, 0.0)}
        began = self.began_at = time.monotonic()
        for user in users:
            user.start()
        since, next_sample = 0, began
        while True:
            next_sample += self.args.interval
            time.sleep(max(0.0, next_sample - time.monotonic()))
            since = self.sample(root, self.roles, began, since)
            if time.monotonic() - began >= self.args.duration:
                break
            for name, process in self.children:
                if process.poll() is not None:
                    raise BenchmarkError(f"{name} exited during the soak:\n{self.tail()}")
        self.stopping.set()
        for user in users:
            user.join(60)
        self.census = self.redis_census()
        self.loadavg_after = "/".join(f"{v:.2f}" for v in os.getloadavg())

    def stop(self) -> None:
        self.stopping.set()
        # idp.serve stops its own tree on SIGINT (what Ctrl-C sends it); the deploy/ processes
        # get SIGTERM, as their orchestrator sends.
        for name, process in self.children:
            if process.poll() is None:
                process.send_signal(signal.SIGINT if name == "serve" else signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for name, process in self.children:
            try:
                self.exit_codes[name] = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in {STOP_GRACE:.0f}s: killing its process group")
                self.exit_codes[name] = "killed"
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.children = []
        if self.pg is not None:
            self.pg.close()
        if self.kv is not None:
            self.kv.close()
        for server in self.backing:
            try:
                server.stop()
            except Exception as error:  # stop the rest whatever this one did
                log(f"could not stop {server.name}: {error}")
        self.outlived += _kill_leftovers(self.seen)
        if self.args.keep:
            log(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)


# --- the summary ----------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _growth(warm: float, end: float, processes: tuple[float, float]) -> float:
    """Growth in %; per process when the role's process count changed (one PostgreSQL
    backend more is not the others growing)."""
    if processes[0] != processes[1] and processes[0] and processes[1]:
        warm, end = warm / processes[0], end / processes[1]
    return 100 * (end - warm) / warm if warm else 0.0


def _slack(peak: float) -> float:
    """What a level may sit above the first stretch's peak and still be no growth: two, or
    2 % (a pool opening one more connection under a busier second is not a leak; a leak over
    minutes of load climbs far past this)."""
    return max(2.0, 0.02 * peak)


@dataclass
class Verdict:
    criterion: str
    met: bool
    detail: str


class Summary:
    """Warm-up ends at `warmup` seconds. Levels are medians of three samples (the three from
    warm-up end, the last three), so one sample caught mid-GC does not decide; fds and
    connections are compared with the highest level of the first stretch after warm-up (a
    tenth of the run, three samples at least): a pool that breathes stays inside it, a leak
    climbs out of it."""

    def __init__(self, soak: Soak, warmup: float) -> None:
        self.soak = soak
        windows = soak.windows
        after = [w for w in windows if w.t >= warmup] or windows[-1:]
        self.warm = after[:3]
        self.end = after[-3:]
        stretch = max(3, round(0.1 * len(windows)))
        self.first_stretch = after[:stretch]
        self.last_stretch = after[-stretch:]
        self.after = after
        self.warmup = warmup

    def level(self, windows: list[Window], role: str, key: str) -> float:
        return _median([float(w.roles.get(role, {}).get(key, 0)) for w in windows])

    def peak(self, windows: list[Window], role: str, key: str) -> float:
        return max((float(w.roles.get(role, {}).get(key, 0)) for w in windows), default=0.0)

    def stretch_p99(self, windows: list[Window]) -> float:
        """p99 of every request that ended in these windows (steadier than one window's)."""
        if not windows:
            return 0.0
        start, end = windows[0].t - self.soak.args.interval, windows[-1].t
        began = self.soak.began_at
        seconds = [r[3] for r in self.soak.recorder.records if start < r[0] - began <= end]
        return 1000 * _percentile(seconds, 99)

    def print(self) -> list[Verdict]:
        soak, target = self.soak, self.soak.target
        records = soak.recorder.records
        roles = sorted({role for w in soak.windows for role in w.roles})

        rss_bad: list[str] = []
        fd_bad: list[str] = []
        conn_bad: list[str] = []
        for role in roles:
            warm, end = self.level(self.warm, role, "rss"), self.level(self.end, role, "rss")
            uss_warm, uss_end = (
                self.level(self.warm, role, "uss"),
                self.level(self.end, role, "uss"),
            )
            processes = (
                self.level(self.warm, role, "processes"),
                self.level(self.end, role, "processes"),
            )
            growth = _growth(warm, end, processes)
            uss_growth = _growth(uss_warm, uss_end, processes)
            # A PostgreSQL backend's RSS counts the shared buffers it has touched, once per
            # backend: its private memory (USS) is what would show a leak.
            judged = uss_growth if role == "postgres" else growth
            if judged >= RSS_GROWTH_LIMIT_PCT:
                rss_bad.append(f"{role}:{judged:+.1f}%")
            print(
                f"rss target={target} role={role} "
                f"processes={processes[0]:.0f}/{processes[1]:.0f} "
                f"warm_mib={warm / 2**20:.1f} end_mib={end / 2**20:.1f} growth_pct={growth:.1f} "
                f"uss_warm_mib={uss_warm / 2**20:.1f} uss_end_mib={uss_end / 2**20:.1f} "
                f"uss_growth_pct={uss_growth:.1f}"
            )
        for role in roles:
            fields = []
            for key in ("fds", "tcp", "unix"):
                warm, end = self.level(self.warm, role, key), self.level(self.end, role, key)
                peak = self.peak(self.first_stretch, role, key)
                last = self.level(self.last_stretch, role, key)
                fields.append(
                    f"{key}_warm={warm:.0f} {key}_end={end:.0f} {key}_first_peak={peak:.0f}"
                )
                # PostgreSQL's backends keep up to max_files_per_process relation files open
                # (its own cache, filled as tables and indexes grow): printed, not judged.
                if role == "postgres" and key == "fds":
                    continue
                if last > peak + _slack(peak):
                    (fd_bad if key == "fds" else conn_bad).append(
                        f"{role}.{key}:{peak:.0f}→{last:.0f}"
                    )
            # Threads explain pools: granian starts its blocking threads as requests wait for
            # one (up to IDP_WEB_THREADS), each with its own database connection and malloc
            # arena; growth that follows them is a pool filling to its bound.
            fields.append(
                f"threads_warm={self.level(self.warm, role, 'threads'):.0f} "
                f"threads_end={self.level(self.end, role, 'threads'):.0f}"
            )
            print(f"fds target={target} role={role} " + " ".join(fields))
        if soak.pg is not None:

            def activity(windows: list[Window]) -> list[float]:
                return [float(w.pg_activity) for w in windows]

            peak = max(activity(self.first_stretch), default=0.0)
            last = _median(activity(self.last_stretch))
            print(
                f"pg_activity target={target} warm={_median(activity(self.warm)):.0f} "
                f"end={_median(activity(self.end)):.0f} first_peak={peak:.0f} "
                f"max={max(activity(self.after), default=0.0):.0f}"
            )
            if last > peak + _slack(peak):
                conn_bad.append(f"pg_stat_activity:{peak:.0f}→{last:.0f}")

        def keys(windows: list[Window], field: str) -> float:
            return _median([float(getattr(w, field)) for w in windows])

        print(
            f"redis_keys target={target} warm={keys(self.warm, 'redis_keys'):.0f} "
            f"end={keys(self.end, 'redis_keys'):.0f} "
            f"without_ttl_warm={keys(self.warm, 'redis_no_ttl'):.0f} "
            f"without_ttl_end={keys(self.end, 'redis_no_ttl'):.0f}"
        )
        for prefix, count in soak.census:
            print(f"redis_without_ttl target={target} prefix={prefix} keys={count}")
        first_window, last_window = self.after[0], self.after[-1]
        first_p99 = self.stretch_p99(self.first_stretch)
        last_p99 = self.stretch_p99(self.last_stretch)
        ratio = last_p99 / first_p99 if first_p99 else 0.0
        print(
            f"p99 target={target} first_window_ms={first_window.p99_ms:.0f} "
            f"last_window_ms={last_window.p99_ms:.0f} first_stretch_ms={first_p99:.0f} "
            f"last_stretch_ms={last_p99:.0f} ratio={ratio:.2f}"
        )

        def cpu_per_request(windows: list[Window]) -> float:
            return 1000 * sum(w.cpu_s for w in windows) / max(sum(w.requests for w in windows), 1)

        first_cpu, last_cpu = (
            cpu_per_request(self.first_stretch),
            cpu_per_request(self.last_stretch),
        )
        print(
            f"cpu target={target} first_stretch_ms_per_req={first_cpu:.2f} "
            f"last_stretch_ms_per_req={last_cpu:.2f} ratio={last_cpu / max(first_cpu, 1e-9):.2f} "
            f"first_stretch_load={_median([w.loadavg for w in self.first_stretch]):.1f} "
            f"last_stretch_load={_median([w.loadavg for w in self.last_stretch]):.1f}"
        )
        total_5xx = sum(1 for r in records if r[2] >= 500)
        no_answer = sum(1 for r in records if r[2] == 0)
        failures = sum(soak.recorder.failures.values())
        elapsed = soak.windows[-1].t if soak.windows else 0.0
        all_seconds = [r[3] for r in records]
        print(
            f"traffic target={target} requests={len(records)} "
            f"rps={len(records) / max(elapsed, 1):.1f} "
            f"p50_ms={1000 * _percentile(all_seconds, 50):.0f} "
            f"p99_ms={1000 * _percentile(all_seconds, 99):.0f} status_5xx={total_5xx} "
            f"no_answer={no_answer} failed_flows={failures}"
        )
        steps = sorted({r[1] for r in records})
        for step in steps:
            times = [r[3] for r in records if r[1] == step]
            statuses = Counter(r[2] for r in records if r[1] == step)
            print(
                f"step target={target} step={step} requests={len(times)} "
                f"p50_ms={1000 * _percentile(times, 50):.0f} "
                f"p99_ms={1000 * _percentile(times, 99):.0f} "
                f"statuses={','.join(f'{k}:{v}' for k, v in sorted(statuses.items()))}"
            )
        for step, message in sorted(soak.recorder.first_failures.items()):
            print(
                f"failure target={target} step={step} count={soak.recorder.failures[step]} "
                f"first={json.dumps(message)}"
            )
        codes = ",".join(f"{name}:{code}" for name, code in soak.exit_codes.items())
        print(
            f"stop target={target} exit_codes={codes} outlived={','.join(soak.outlived) or 'none'}"
        )
        verdicts = [
            Verdict(
                f"rss_growth_lt_{RSS_GROWTH_LIMIT_PCT:.0f}pct", not rss_bad,
                ",".join(rss_bad) or "every role",
            ),
            Verdict("no_fd_growth", not fd_bad, ",".join(fd_bad) or "every role"),
            Verdict("no_connection_growth", not conn_bad, ",".join(conn_bad) or "every role"),
            Verdict(
                f"p99_steady_le_{P99_STEADY_RATIO}x", bool(first_p99) and ratio <= P99_STEADY_RATIO,
                f"ratio={ratio:.2f}",
            ),
            Verdict("zero_5xx", total_5xx == 0, f"status_5xx={total_5xx}"),
            Verdict(
                "flows_complete", failures == 0 and no_answer == 0,
                f"failed_flows={failures} no_answer={no_answer}",
            ),
            Verdict(
                "clean_stop",
                not soak.outlived and all(code == 0 for code in soak.exit_codes.values()),
                f"exit_codes={codes} outlived={','.join(soak.outlived) or 'none'}",
            ),
        ]  # fmt: skip
        for v in verdicts:
            print(
                f"verdict target={target} criterion={v.criterion} "
                f"verdict={'met' if v.met else 'not_met'} detail={v.detail}"
            )
        return verdicts


def write_csv(path: Path, soak: Soak, header: bool) -> None:
    """Per process per sample to `path`, per window to `<path stem>-windows.csv` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as out:
        writer = csv.writer(out)
        if header:
            writer.writerow(["target", "t_s", "role", "pid", "rss_kib", "uss_kib", "fds", "tcp",
                             "unix", "cpu_s", "threads"])  # fmt: skip
        for p in soak.process_samples:
            writer.writerow([soak.target, f"{p.t:.1f}", p.role, p.pid, p.rss // 1024,
                             p.uss // 1024, p.fds, p.tcp, p.unix, f"{p.cpu:.2f}",
                             p.threads])  # fmt: skip
    with path.with_name(f"{path.stem}-windows.csv").open("a", newline="") as out:
        writer = csv.writer(out)
        if header:
            writer.writerow(["target", "t_s", "requests", "p50_ms", "p99_ms", "status_5xx",
                             "no_answer", "pg_activity", "redis_keys", "redis_no_ttl",
                             "cpu_s", "loadavg",
                             *(f"p50_ms_{step}" for step in STEPS)])  # fmt: skip
        for w in soak.windows:
            writer.writerow([soak.target, f"{w.t:.1f}", w.requests, f"{w.p50_ms:.1f}",
                             f"{w.p99_ms:.1f}", w.status_5xx, w.no_answer, w.pg_activity,
                             w.redis_keys, w.redis_no_ttl,
                             f"{w.cpu_s:.2f}", f"{w.loadavg:.2f}",
                             *(f"{w.step_p50_ms[step]:.1f}" for step in STEPS)])  # fmt: skip


class SoakRun:
    """Each target in turn: start, load and sample, stop, summary."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.current: Soak | None = None
        self.all_met = True

    def run(self) -> None:
        import django

        args = self.args
        warmup = args.warmup if args.warmup is not None else 0.2 * args.duration
        if args.csv:
            for stale in (args.csv, args.csv.with_name(f"{args.csv.stem}-windows.csv")):
                stale.unlink(missing_ok=True)
        for index, target in enumerate(args.target):
            self.current = Soak(args, target)
            self.current.run()
            self.current.stop()  # before the summary: the stop's own failures are the soak's
            soak, self.current = self.current, None
            print(
                f"machine target={target} nproc={os.cpu_count()} "
                f"cpu_model={json.dumps(cpu_model())} python={platform.python_version()} "
                f"django={django.get_version()} loadavg_before={soak.loadavg_before} "
                f"loadavg_after={soak.loadavg_after}"
            )
            print(
                f"config target={target} duration_s={args.duration} warmup_s={warmup:.0f} "
                f"interval_s={args.interval} concurrency={args.concurrency} "
                f"refreshes={args.refreshes} users={args.users} log_level={args.log_level}"
            )
            verdicts = Summary(soak, warmup).print()
            sys.stdout.flush()
            self.all_met = self.all_met and all(v.met for v in verdicts)
            if args.csv:
                write_csv(args.csv, soak, header=index == 0)

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", nargs="+", default=["embedded", "postgres"],
        choices=("embedded", "postgres"), help="what runs Tessera (both, in turn, by default)",
    )  # fmt: skip
    parser.add_argument("--duration", type=int, default=1800, help="seconds of load")
    parser.add_argument(
        "--warmup", type=float, help="seconds before the levels compared (default: 20 %% of it)"
    )
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
    parser.add_argument("--concurrency", type=int, default=4, help="virtual users (threads)")
    parser.add_argument("--refreshes", type=int, default=3, help="refreshes per sign-in")
    parser.add_argument("--users", type=int, default=100, help="people signed in in turn")
    parser.add_argument("--csv", type=Path, help="write the samples here (and *-windows.csv)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    args = parser.parse_args(argv)
    if args.duration < 3 * args.interval:
        parser.error("--duration must cover three --interval samples at least")
    runner = SoakRun(args)
    # run_benchmark's shape, plus the verdicts' exit status.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        runner.run()
    except BenchmarkError as error:
        print(f"soak could not run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        runner.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0 if runner.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
