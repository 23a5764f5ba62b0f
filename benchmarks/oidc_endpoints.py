"""OIDC endpoint throughput of the production server on one core.

    .venv/bin/python -m benchmarks.oidc_endpoints [--warmup 3] [--duration 10] [--connections 8]

Starts a throwaway PostgreSQL and Redis (tests.servers), migrates, registers the clients it
needs (benchmarks.fixtures), then runs the web server exactly as production does
(the argv of `python -m idp.web`, granian, with IDP_WEB_WORKERS=1) pinned to
one CPU, and drives it with wrk from the other CPU(s). It does so twice, once per access-token
algorithm (settings.ACCESS_TOKEN_ALG ES256, then RS256), and measures every endpoint against a
bare Django JSON view served by the same process in the same run. benchmarks/README.md explains
the output. Figures only: nothing is asserted; the exit status is non-zero only when the benchmark
itself could not run (a missing tool, a server that did not start, an endpoint that did not
answer 200 before the load).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVER_START_TIMEOUT = 60.0
PROFILE_RATE = 250  # py-spy samples per second
WRK_APT_LINE = "apt-get install -y wrk"


@dataclass(frozen=True)
class Server:
    name: str
    alg: str  # settings.ACCESS_TOKEN_ALG
    app: str  # the WSGI application the web server serves
    only: tuple[str, ...] = ()  # endpoint name prefixes measured on it (all when empty)


SERVERS = (
    Server("es256", "ES256", "idp.wsgi:application"),
    Server("rs256", "RS256", "idp.wsgi:application"),
    # The same server with the revocation check taken out of token validation: the reference
    # the check's cost is measured against (the sessions issue: under 10 % at userinfo).
    Server(
        "es256_no_revocation_check",
        "ES256",
        "benchmarks.wsgi_without_revocation:application",
        ("bare", "userinfo_es256"),
    ),
    # The same server with the security event's INSERT made a no-op: what the synchronous,
    # durable event write (the audit issue) costs a client_credentials token.
    Server(
        "es256_no_event_write",
        "ES256",
        "benchmarks.wsgi_without_event_write:application",
        ("bare", "client_credentials_es256"),
    ),
)
REVOCATION_OVERHEAD_TARGET = 0.10

# Targets of the issue, as a fraction of the bare view's rate in the same server run.
TARGETS = {
    "client_credentials_es256": 0.50,
    "jwks": 0.80,
    "discovery": 0.80,
}


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# --- machine and CPU placement -----------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """The server (the granian master and its one worker) gets one CPU; wrk, PostgreSQL, Redis
    and this script share the others. PostgreSQL and Redis do work for the server on every
    token request, but on the server's core they would make the figure depend on how the
    scheduler interleaves three processes; on the load generator's core they add what a
    separate database host adds in production: latency, not CPU taken from the web worker."""

    server: set[int]
    others: set[int]

    @classmethod
    def choose(cls) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            log("only one CPU available: server and load generator share it (figures are lower)")
            return cls(set(cpus), set(cpus))
        return cls({cpus[0]}, set(cpus[1:]))


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


# --- wrk ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchmarkError(f"wrk is not installed: run `sudo {WRK_APT_LINE}` and try again")
    log(f"wrk is not installed: running `apt-get update && {WRK_APT_LINE}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise BenchmarkError(f"`{WRK_APT_LINE}` did not install wrk")
    return found


def _lua_string(text: str) -> str:
    if not text.isascii():
        raise BenchmarkError("wrk scripts carry ASCII only")
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


# One line from done(), parsed below; every request whose status is not 200 is counted, not
# only wrk's own "Non-2xx or 3xx" (status >= 400).
_WRK_REPORT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) not200 = 0 end
function response(status, headers, body)
  if status ~= 200 then not200 = not200 + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("not200") end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d not200=%d ge400=%d connect=%d read=%d write=%d " ..
    "timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\\n",
    summary.requests, summary.duration, bad, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    # Returns what is wrong with a 200 response's JSON body, or "" when it is what we expect.
    check: Callable[[Any], str] = lambda document: ""

    def lua(self) -> str:
        lines = [f"wrk.method = {_lua_string(self.method)}"]
        if self.body:
            lines.append(f"wrk.body = {_lua_string(self.body)}")
        lines += [
            f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in self.headers.items()
        ]
        return "\n".join(lines) + "\n" + _WRK_REPORT


@dataclass
class Result:
    endpoint: str
    server: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    not200: int
    ge400: int
    socket_errors: int
    server_cpu_pct: float  # worker CPU time / wall time of the measured window
    server_sys_pct: float  # the part of it spent in the kernel
    server_cpu_us_per_req: float
    db_cpu_us_per_req: float  # PostgreSQL (every backend) + Redis, on the other CPU(s)
    profile: list[str] = field(default_factory=list)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads, so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS  # utime, stime


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class CpuMeter:
    """CPU seconds a set of processes used between start() and stop()."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.before: dict[int, tuple[float, float]] = {}
        self.started = 0.0

    def start(self) -> None:
        self.before = {pid: _cpu_seconds(pid) for pid in self.pids()}
        self.started = time.monotonic()

    def stop(self) -> tuple[float, float, float]:
        """(user CPU seconds, system CPU seconds, wall seconds); a process born meanwhile
        counts from zero."""
        wall = time.monotonic() - self.started
        user = system = 0.0
        for pid in self.pids():
            now, before = _cpu_seconds(pid), self.before.get(pid, (0.0, 0.0))
            user += now[0] - before[0]
            system += now[1] - before[1]
        return user, system, wall


def _wrk_report(output: str) -> dict[str, int]:
    for line in output.splitlines():
        if line.startswith("WRK "):
            return {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
    raise BenchmarkError(f"wrk printed no report:\n{output}")


# --- the servers -------------------------------------------------------------------------


BENCH_RATE_RULES = (
    "LOGIN_IP", "LOGIN_ACCOUNT", "LOGIN_ENDPOINT", "AUTHORIZE_IP", "AUTHORIZE_ENDPOINT",
    "TOKEN_IP", "TOKEN_CLIENT", "TOKEN_ENDPOINT", "INTROSPECT_IP", "INTROSPECT_CLIENT",
    "REVOKE_IP", "REVOKE_CLIENT", "USERINFO_IP", "API_IP", "GLOBAL",
)  # fmt: skip


class WebServer:
    """The production web server command, one worker, pinned to the server CPU."""

    def __init__(self, env: dict[str, str], cpus: set[int], log_path: Path, app: str) -> None:
        self.app = app
        self.env = env
        self.cpus = cpus
        self.log_path = log_path
        self.port = int(env["PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def _preexec(self) -> None:
        os.sched_setaffinity(0, self.cpus)
        _die_with_parent()

    def start(self) -> None:
        # The production argv (idp/web.py) for this environment, serving self.app.
        printed = _run([PYTHON, "-m", "idp.web", "--print-argv"], self.env, "idp.web")
        argv = [*json.loads(printed)[:-1], self.app]
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches this script, which stops the server
                preexec_fn=self._preexec,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise BenchmarkError(f"the web server did not start:\n{tail}")
            with contextlib.suppress(OSError):
                status, _ = request(self.port, "GET", "/healthz")
                if status == 200:
                    return
            time.sleep(0.1)

    def worker_pid(self) -> int:
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) != 1:
            raise BenchmarkError(f"expected one web server worker, found {children}")
        return int(children[0])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: idp/web.py's kill timeout
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _run(argv: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def start_servers(servers: list[Any]) -> None:
    """Starts the throwaway servers (tests.servers; spawned together, then waited for) and
    creates the `tessera` database in the first, PostgreSQL."""
    for server in servers:
        server.spawn()
    for server in servers:
        try:
            server.wait_ready()
        except Exception as error:  # tests.servers raises pytest.UsageError
            raise BenchmarkError(str(error)) from None
    postgres = servers[0]
    _run(
        [str(postgres.bindir / "createdb"), "-h", "127.0.0.1",
         "-p", str(postgres.port), "-U", postgres.user, "tessera"],
        dict(os.environ), "createdb",
    )  # fmt: skip


# --- the run -----------------------------------------------------------------------------


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.placement = Placement.choose()
        self.base = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
        self.base.chmod(0o755)  # the postgres user (under root) must reach its folder inside
        self.servers: list[Any] = []
        self.web: WebServer | None = None
        self.server_name = ""
        self.results: list[Result] = []

    # environment shared by migrate, the fixtures and the server
    def environ(self, alg: str) -> dict[str, str]:
        from tests.servers import _OWN_SETTINGS

        env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_SETTINGS)}
        env.update(
            DJANGO_SETTINGS_MODULE="benchmarks.bench_settings",
            DATABASE_URL=self.postgres.url(),
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
            IDP_SECRET_KEY=self.secret_key,
            IDP_KEY_ENCRYPTION_KEY=self.kek,
            IDP_DATA_DIR=str(self.base / "data"),
            IDP_ISSUER=f"http://127.0.0.1:{self.port}",
            PORT=str(self.port),
            IDP_WEB_WORKERS="1",
            IDP_LOG_LEVEL=self.args.log_level,
            IDP_ACCESS_TOKEN_ALG=alg,
        )
        # One load generator on one address: rate limits stay on (their Redis round trips are
        # part of what is measured) with budgets no benchmark reaches.
        env.update({f"IDP_RATELIMIT_{name}": "10000000/1s" for name in BENCH_RATE_RULES})
        return env

    def setup(self) -> None:
        from tests.servers import Postgres, Redis, free_port

        # Everything started from here on (PostgreSQL, Redis, wrk, migrate) inherits these
        # CPUs; the web server alone moves to the server CPU.
        os.sched_setaffinity(0, self.placement.others)
        self.postgres = Postgres(self.base)
        self.redis = Redis(self.base)
        self.servers = [self.postgres, self.redis]
        start_servers(self.servers)
        self.port = free_port()
        self.secret_key = secrets.token_urlsafe(64)
        self.kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        env = self.environ("ES256")
        log("migrate + collectstatic")
        _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, "migrate")
        _run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], env, "collectstatic")
        # A token lives ACCESS_TOKEN_LIFETIME; the user tokens must outlive any --duration.
        fixtures_env = {**env, "IDP_ACCESS_TOKEN_LIFETIME": "86400"}
        self.fixtures = json.loads(
            _run([PYTHON, "-m", "benchmarks.fixtures"], fixtures_env, "fixtures")
        )

    def endpoints(self, alg: str) -> list[Endpoint]:
        suffix = alg.lower()
        fx = self.fixtures
        basic = base64.b64encode(
            f"{fx['service_client_id']}:{fx['service_client_secret']}".encode()
        ).decode()
        form = "application/x-www-form-urlencoded"
        user_token = fx["user_tokens"][alg]
        issuer = f"http://127.0.0.1:{self.port}"

        def token_check(document: Any) -> str:
            token = document.get("access_token", "")
            encoded = token.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            return "" if header.get("alg") == alg else f"token alg {header.get('alg')}, not {alg}"

        endpoints = [
            Endpoint(
                "bare", "GET", "/bench/bare", check=lambda d: "" if d == {"ok": True} else "?"
            ),
            Endpoint(
                f"client_credentials_{suffix}",
                "POST",
                "/oauth/token",
                {"Authorization": f"Basic {basic}", "Content-Type": form},
                "grant_type=client_credentials",
                check=token_check,
            ),
        ]
        if alg == "ES256":  # the same bytes whatever the algorithm: measured once
            endpoints += [
                Endpoint("jwks", "GET", "/oauth/jwks", check=lambda d: "" if d["keys"] else "?"),
                Endpoint(
                    "discovery",
                    "GET",
                    "/.well-known/openid-configuration",
                    check=lambda d: "" if d["issuer"] == issuer else "wrong issuer",
                ),
            ]
        endpoints += [
            Endpoint(
                f"userinfo_{suffix}",
                "GET",
                "/oauth/userinfo",
                {"Authorization": f"Bearer {user_token}"},
                check=lambda d: "" if d.get("sub") and d.get("email") else "no sub/email",
            ),
            Endpoint(
                f"introspection_{suffix}",
                "POST",
                "/oauth/introspect",
                {"Authorization": f"Basic {basic}", "Content-Type": form},
                f"token={user_token}",
                check=lambda d: "" if d.get("active") is True else "token not active",
            ),
        ]
        if self.args.only:  # the reference always runs: every ratio needs it
            wanted = ("bare", *self.args.only)
            endpoints = [endpoint for endpoint in endpoints if endpoint.name.startswith(wanted)]
        return endpoints

    def probe(self, endpoint: Endpoint) -> None:
        """A few requests before the load: the benchmark must never measure error pages."""
        for _ in range(3):
            status, body = request(
                self.port, endpoint.method, endpoint.path, endpoint.headers, endpoint.body
            )
            problem = f"status {status}" if status != 200 else ""
            if not problem:
                try:
                    problem = endpoint.check(json.loads(body))
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    problem = f"unexpected body ({error})"
            if problem:
                raise BenchmarkError(
                    f"{endpoint.name}: {endpoint.method} {endpoint.path} answered "
                    f"{problem}: {body[:500]!r}"
                )

    def wrk(self, endpoint: Endpoint, seconds: float) -> dict[str, int]:
        script = self.base / f"{endpoint.name}.lua"
        script.write_text(endpoint.lua())
        argv = [
            self.wrk_path, "-t1", f"-c{self.args.connections}", f"-d{seconds}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{self.port}{endpoint.path}",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"wrk failed on {endpoint.name}:\n{done.stdout}{done.stderr}")
        return _wrk_report(done.stdout)

    def measure(self, endpoint: Endpoint) -> Result:
        self.probe(endpoint)
        self.wrk(endpoint, self.args.warmup)
        assert self.web is not None
        worker = self.web.worker_pid()
        server_meter = CpuMeter(lambda: [worker])
        db_meter = CpuMeter(self.database_pids)
        profiler = self.start_profiler(endpoint)
        server_meter.start()
        db_meter.start()
        report = self.wrk(endpoint, self.args.duration)
        server_user, server_sys, wall = server_meter.stop()
        server_cpu = server_user + server_sys
        db_user, db_sys, _ = db_meter.stop()
        db_cpu = db_user + db_sys
        profile = self.finish_profiler(profiler, endpoint)
        seconds = report["duration_us"] / 1e6
        requests = max(report["requests"], 1)
        result = Result(
            endpoint=endpoint.name,
            server=self.server_name,
            rps=report["requests"] / seconds,
            p50_ms=report["p50_us"] / 1000,
            p90_ms=report["p90_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            max_ms=report["max_us"] / 1000,
            requests=report["requests"],
            not200=report["not200"],
            ge400=report["ge400"],
            socket_errors=sum(report[k] for k in ("connect", "read", "write", "timeout")),
            server_cpu_pct=100 * server_cpu / wall,
            server_sys_pct=100 * server_sys / wall,
            server_cpu_us_per_req=1e6 * server_cpu / requests,
            db_cpu_us_per_req=1e6 * db_cpu / requests,
        )
        if profile:
            result.profile = summarize_profile(
                profile, result.server_cpu_us_per_req, self.args.profile_top
            )
        return result

    def database_pids(self) -> list[int]:
        pids = []
        for server in self.servers:
            if server.process is not None:
                pids += [server.process.pid, *_children(server.process.pid)]
        return pids

    # --- optional py-spy profile of the worker during the measured window ---------------

    def start_profiler(self, endpoint: Endpoint) -> subprocess.Popen[bytes] | None:
        if not self.args.py_spy:
            return None
        assert self.web is not None
        output = Path(self.args.profile_dir) / f"{endpoint.name}.txt"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        argv = [
            self.args.py_spy, "record", "--pid", str(self.web.worker_pid()),
            "--rate", str(PROFILE_RATE), "--gil", "--format", "raw", "--output", str(output),
            "--duration", str(int(self.args.duration)),
        ]  # fmt: skip
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)  # attached before the load starts
        return process

    def finish_profiler(
        self, profiler: subprocess.Popen[bytes] | None, endpoint: Endpoint
    ) -> Path | None:
        if profiler is None:
            return None
        _, stderr = profiler.communicate(timeout=self.args.duration + 30)
        output = Path(self.args.profile_dir) / f"{endpoint.name}.txt"
        if not output.exists():
            log(f"py-spy wrote no profile for {endpoint.name}: {stderr.decode()[-500:]}")
            return None
        return output

    # --- one server per algorithm -------------------------------------------------------

    def run_server(self, server: Server) -> None:
        log(f"web server {server.app} with ACCESS_TOKEN_ALG={server.alg} on CPU "
            f"{_cpus(self.placement.server)}")  # fmt: skip
        self.server_name = server.name
        self.web = WebServer(
            self.environ(server.alg),
            self.placement.server,
            self.base / f"web-{server.name}.log",
            server.app,
        )
        self.web.start()
        try:
            for endpoint in self.endpoints(server.alg):
                if server.only and not endpoint.name.startswith(server.only):
                    continue
                log(f"{endpoint.name}: {self.args.warmup}s warm-up, {self.args.duration}s load")
                self.results.append(self.measure(endpoint))
        finally:
            self.web.stop()
            self.web = None

    def run(self) -> None:
        self.wrk_path = ensure_wrk()
        started = time.monotonic()
        self.setup()
        for server in SERVERS:
            self.run_server(server)
        self.report(time.monotonic() - started)

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- output -------------------------------------------------------------------------

    def report(self, elapsed: float) -> None:
        import django

        print(
            f"machine nproc={os.cpu_count()} cpu_model={json.dumps(cpu_model())} "
            f"python={platform.python_version()} django={django.get_version()} "
            f"server_cpus={_cpus(self.placement.server)} "
            f"loadgen_db_cpus={_cpus(self.placement.others)} "
            f"loadavg_before={self.loadavg}"
        )
        print(
            f"config workers=1 server=granian_wsgi connections={self.args.connections} "
            f"wrk_threads=1 warmup_s={self.args.warmup} duration_s={self.args.duration} "
            f"log_level={self.args.log_level} elapsed_s={elapsed:.0f}"
        )
        bare = {r.server: r.rps for r in self.results if r.endpoint == "bare"}
        bare_cpu = {r.server: r.server_cpu_us_per_req for r in self.results if r.endpoint == "bare"}
        for r in self.results:
            ratio = r.rps / bare[r.server] if bare.get(r.server) else float("nan")
            cpu_ratio = bare_cpu.get(r.server, float("nan")) / max(r.server_cpu_us_per_req, 1)
            print(
                f"endpoint={r.endpoint} server={r.server} rps={r.rps:.1f} p50_ms={r.p50_ms:.2f} "
                f"p90_ms={r.p90_ms:.2f} p99_ms={r.p99_ms:.2f} max_ms={r.max_ms:.2f} "
                f"requests={r.requests} not200={r.not200} non2xx3xx={r.ge400} "
                f"socket_errors={r.socket_errors} server_cpu_pct={r.server_cpu_pct:.0f} "
                f"server_sys_pct={r.server_sys_pct:.0f} "
                f"server_cpu_us_per_req={r.server_cpu_us_per_req:.0f} "
                f"db_cpu_us_per_req={r.db_cpu_us_per_req:.0f} cpu_ratio_vs_bare={cpu_ratio:.2f} "
                f"ratio_vs_bare={ratio:.2f}"
            )
        by_name = {r.endpoint: r for r in self.results if r.server == "es256"}
        for name, goal in TARGETS.items():
            if name not in by_name:
                continue  # left out with --only
            r = by_name[name]
            ratio = r.rps / bare[r.server]
            verdict = "met" if ratio >= goal and r.not200 == 0 else "not met"
            print(
                f"target endpoint={name} goal=ratio>={goal:.2f} ratio={ratio:.2f} "
                f"verdict={verdict.replace(' ', '_')}"
            )
        userinfo = {r.server: r for r in self.results if r.endpoint == "userinfo_es256"}
        checked, unchecked = userinfo.get("es256"), userinfo.get("es256_no_revocation_check")
        if checked and unchecked:
            overhead = 1 - checked.rps / unchecked.rps
            verdict = "met" if overhead < REVOCATION_OVERHEAD_TARGET else "not_met"
            print(
                f"revocation endpoint=userinfo_es256 rps_with_check={checked.rps:.1f} "
                f"rps_without_check={unchecked.rps:.1f} p99_ms_with_check={checked.p99_ms:.2f} "
                f"p99_ms_without_check={unchecked.p99_ms:.2f} "
                f"cpu_us_per_req_with_check={checked.server_cpu_us_per_req:.0f} "
                f"cpu_us_per_req_without_check={unchecked.server_cpu_us_per_req:.0f} "
                f"overhead_pct={100 * overhead:.1f} goal=overhead<"
                f"{100 * REVOCATION_OVERHEAD_TARGET:.0f}% verdict={verdict}"
            )
        tokens = {r.server: r for r in self.results if r.endpoint == "client_credentials_es256"}
        written, dropped = tokens.get("es256"), tokens.get("es256_no_event_write")
        if written and dropped:
            print(
                f"event_write endpoint=client_credentials_es256 rps_with_write={written.rps:.1f} "
                f"rps_without_write={dropped.rps:.1f} "
                f"ratio_vs_bare_with_write={written.rps / bare[written.server]:.2f} "
                f"ratio_vs_bare_without_write={dropped.rps / bare[dropped.server]:.2f} "
                f"cpu_us_per_req_with_write={written.server_cpu_us_per_req:.0f} "
                f"cpu_us_per_req_without_write={dropped.server_cpu_us_per_req:.0f}"
            )
        for r in self.results:
            for line in r.profile:
                print(f"profile endpoint={r.endpoint} server={r.server} {line}")

    @property
    def loadavg(self) -> str:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())


# --- py-spy raw profiles ----------------------------------------------------------------

_LINE_NUMBER = re.compile(r":\d+\)$")


def _frames(stack: str) -> Iterator[str]:
    for frame in stack.split(";"):
        name = _LINE_NUMBER.sub(")", frame.strip())
        if name.startswith(("process ", "thread ")):
            continue
        yield name


# Areas of a request, for the profile summary: the first rule any frame of a stack matches
# names the area of that sample (so an INSERT inside emit() counts as emit, not as SQL).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jwt_sign", ("sign (apps/tokens/claims.py)",)),
    ("access_token_claims", ("access_token_claims (apps/tokens/claims.py)",)),
    ("jwt_verify", ("_check_signature (apps/tokens/validation.py)",)),
    ("revocation_check_redis", ("_check_revocation (apps/tokens/validation.py)",)),
    ("validate_access_token_other", ("validate_access_token (apps/tokens/validation.py)",)),
    ("emit_security_event_insert", ("emit (apps/core/events.py)",)),
    ("access_token_row_insert", ("TesseraValidator._create_access_token (",)),
    ("client_lookup_dot", ("OAuth2Validator._load_application (",)),
    ("client_secret_check", ("OAuth2Validator._check_secret (",)),
    ("client_lookup_introspect_view", ("_introspecting_client (apps/tokens/views.py)",)),
    ("transaction_begin_commit", ("Atomic.__enter__ (", "Atomic.__exit__ (")),
    ("orm_query_in_view", ("QuerySet.", "BaseManager.", "ModelIterable.")),
    (
        "oauthlib_dot_other",
        ("OAuthLibCore.", "OAuthLibMixin.", "TokenEndpoint.", "OAuth2Validator."),
    ),
    ("view_other", ("(apps/tokens/views.py)", "TokenView.", "bare (benchmarks/bench_urls.py)")),
    ("django_handler_middleware", ("BaseHandler.get_response (",)),
    ("server_http_wsgi_threads", ("",)),
)


def _area(frames: list[str]) -> str:
    for area, markers in AREAS:
        if any(marker in frame for frame in frames for marker in markers):
            return area
    return "other"


def summarize_profile(path: Path, cpu_us_per_req: float, top: int) -> list[str]:
    """Where the worker held the GIL: py-spy --gil samples only the thread holding it, i.e.
    the request's Python work, not waits on the database or other threads. pct is the share
    of those samples; est_cpu_us_per_req spreads the worker's measured CPU time per request
    over them in proportion (an estimate: it takes GIL-held samples as a proxy for CPU).
    kind=area groups samples by part of the request (AREAS); kind=self counts the innermost
    frame only; kind=inclusive counts every function on the stack."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = list(_frames(stack))
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        areas[_area(frames)] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return []

    def row(kind: str, name: str, count: int) -> str:
        share = count / total
        return (
            f"kind={kind} pct={100 * share:.1f} est_cpu_us_per_req={share * cpu_us_per_req:.0f} "
            f"{'area' if kind == 'area' else 'function'}={json.dumps(name)}"
        )

    lines = [f"kind=samples count={total} cpu_us_per_req={cpu_us_per_req:.0f}"]
    lines += [row("area", name, count) for name, count in areas.most_common()]
    lines += [row("self", name, count) for name, count in own.most_common(top)]
    lines += [row("inclusive", name, count) for name, count in inclusive.most_common(top * 3)]
    return lines


class Runnable(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


def run_benchmark(benchmark: Runnable) -> int:
    """Runs a benchmark, stopping its servers however it ends (error, Ctrl-C, SIGTERM); the
    exit status of main()."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        benchmark.run()
    except BenchmarkError as error:
        print(f"benchmark could not run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        benchmark.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=3, help="seconds before measuring")
    parser.add_argument("--duration", type=int, default=10, help="seconds measured")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="IDP_LOG_LEVEL of the server; info writes one access log line per request",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="PREFIX",
        help="measure only the endpoints whose name starts with one of these (and bare)",
    )
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile the worker")
    parser.add_argument(
        "--profile-dir", default="var/bench-profiles", help="py-spy raw profiles (kept)"
    )
    parser.add_argument("--profile-top", type=int, default=12, help="functions listed")
    return run_benchmark(Benchmark(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
