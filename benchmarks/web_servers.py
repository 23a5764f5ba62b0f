"""Web servers, and node-oidc-provider beside Tessera, on one core, in one run.

    .venv/bin/python -m benchmarks.web_servers servers     # gunicorn sync/gthread, granian, uvicorn
    .venv/bin/python -m benchmarks.web_servers reference   # node-oidc-provider 9 beside Tessera

`servers` serves Tessera (PostgreSQL + Redis) with each candidate web server, one process
pinned to one CPU, and measures the bare view, discovery and client_credentials ES256 on each.
`reference` starts node-oidc-provider 9 (benchmarks/node_reference/, in-memory adapter, ES256
JWT access tokens) and Tessera on the same CPU, one after the other, and measures
client_credentials and refresh_token on both, for Tessera's embedded default (SQLite + the
bundled Redis) and for PostgreSQL + Redis. wrk runs on the other CPU(s) with the same
connections for every server. benchmarks/README.md explains the output. Figures only: the exit
status is non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.oidc_endpoints import (
    _WRK_REPORT,
    BENCH_RATE_RULES,
    PYTHON,
    ROOT,
    BenchmarkError,
    CpuMeter,
    Endpoint,
    Placement,
    _children,
    _cpus,
    _die_with_parent,
    _lua_string,
    _run,
    _wrk_report,
    cpu_model,
    ensure_wrk,
    log,
    request,
    run_benchmark,
    start_servers,
)

NODE_DIR = ROOT / "benchmarks" / "node_reference"
SERVER_START_TIMEOUT = 90.0
NODE_SECRET = "node-benchmark-secret-" + secrets.token_urlsafe(16)
GRANIAN_BLOCKING_THREADS = 4  # as gunicorn gthread's threads: the same concurrency into Django


def tessera_argv(kind: str, port: int) -> list[str]:
    """The command each candidate serves Tessera with; `production` is idp.serve's own."""
    from idp.serve import web_server_argv

    gunicorn = [PYTHON, "-m", "gunicorn", "-c", "benchmarks/gunicorn.conf.py"]
    return {
        "production": web_server_argv(PYTHON),
        "gunicorn_gthread": [*gunicorn, "idp.wsgi:application"],
        "gunicorn_sync": [*gunicorn, "--worker-class", "sync", "idp.wsgi:application"],
        "granian_wsgi": [
            PYTHON, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--blocking-threads",
            str(GRANIAN_BLOCKING_THREADS), "--no-ws", "--http", "1", "idp.wsgi:application",
        ],
        "granian_asgi": [
            PYTHON, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--no-ws", "--http", "1",
            "idp.asgi:application",
        ],
        "uvicorn_asgi": [
            PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--lifespan", "off", "idp.asgi:application",
        ],
    }[kind]  # fmt: skip


SERVER_KINDS = (
    "gunicorn_sync", "gunicorn_gthread", "granian_wsgi", "granian_asgi", "uvicorn_asgi",
    "production",  # python -m idp.web: granian WSGI as deployed (IDP_WEB_THREADS threads)
)  # fmt: skip


def _tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    pids = [pid]
    for child in _children(pid):
        pids += _tree(child)
    return pids


class ServerProcess:
    """One server command, started in its own session and pinned (with every process it
    forks) to the server CPU; ready once `ready_path` answers 200."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cpus: set[int],
        log_path: Path,
        port: int,
        cwd: Path = ROOT,
        ready_path: str = "/healthz",
    ) -> None:
        self.name, self.argv, self.env, self.cpus = name, argv, env, cpus
        self.log_path, self.port, self.cwd, self.ready_path = log_path, port, cwd, ready_path
        self.process: subprocess.Popen[bytes] | None = None

    def _preexec(self) -> None:
        os.sched_setaffinity(0, self.cpus)
        _die_with_parent()

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=self._preexec,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise BenchmarkError(f"{self.name} did not start:\n{tail}")
            try:
                status, _ = request(self.port, "GET", self.ready_path)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)

    def pids(self) -> list[int]:
        return _tree(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None


# wrk script for refresh_token: every request spends the next token of a file (rotation makes
# each single use). `used` counts tokens sent (answered or not), so the next run starts after
# them; when the file runs out the request carries "exhausted" and is counted in not200.
_REFRESH_LUA = """
local tokens = {}
local index = 0
function init(args)
  not200 = 0
  used = 0
  for line in io.lines(TOKENS_FILE) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
end
function request()
  index = index + 1
  used = index
  local token = tokens[index] or "exhausted"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end
"""


@dataclass
class Measured:
    target: str  # which server (and storage) served it
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    not200: int
    socket_errors: int
    server_cpu_pct: float
    server_cpu_us_per_req: float
    tokens_left: int = -1  # refresh only: tokens not yet spent after the run


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.placement = Placement.choose()
        self.base = Path(tempfile.mkdtemp(prefix="tessera-webbench-"))
        self.base.chmod(0o755)
        self.backing: list[Any] = []  # PostgreSQL, Redis (tests.servers)
        self.server: ServerProcess | None = None
        self.embedded_redis: Any = None
        self.results: list[Measured] = []
        self.loadavg_before = "/".join(f"{v:.2f}" for v in os.getloadavg())

    # --- environments ----------------------------------------------------------------

    def base_env(self, data_dir: Path, port: int) -> dict[str, str]:
        from tests.servers import _OWN_SETTINGS

        env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_SETTINGS)}
        env.update(
            DJANGO_SETTINGS_MODULE="benchmarks.bench_settings",
            IDP_SECRET_KEY=self.secret_key,
            IDP_KEY_ENCRYPTION_KEY=self.kek,
            IDP_DATA_DIR=str(data_dir),
            IDP_ISSUER=f"http://127.0.0.1:{port}",
            PORT=str(port),
            IDP_WEB_WORKERS="1",
            IDP_LOG_LEVEL=self.args.log_level,
            IDP_ACCESS_TOKEN_ALG="ES256",  # noqa: S106 - an algorithm name
        )
        # One load generator on one address: rate limits stay on (their Redis round trip is
        # part of what is measured) with budgets no benchmark reaches, as in oidc_endpoints.
        env.update({f"IDP_RATELIMIT_{name}": "10000000/1s" for name in BENCH_RATE_RULES})
        return env

    def postgres_env(self, port: int) -> dict[str, str]:
        env = self.base_env(self.base / "data-pg", port)
        env.update(
            DATABASE_URL=self.postgres.url(),
            REDIS_URL=self.redis.url(0),
            CELERY_BROKER_URL=self.redis.url(1),
        )
        return env

    def embedded_env(self, port: int) -> dict[str, str]:
        """The README's embedded default: no DATABASE_URL or REDIS_URL, so SQLite under the
        data dir and the bundled Redis on a unix socket (idp/settings.py)."""
        return self.base_env(self.base / "data-embedded", port)

    def start_postgres_redis(self) -> None:
        from tests.servers import Postgres, Redis

        self.postgres = Postgres(self.base)
        self.redis = Redis(self.base)
        self.backing = [self.postgres, self.redis]
        start_servers(self.backing)

    def start_bundled_redis(self, env: dict[str, str]) -> None:
        from idp.serve import Tree, start_embedded_redis

        socket_path = Path(env["IDP_DATA_DIR"]) / "redis" / "redis.sock"
        self.embedded_redis = Tree()
        start_embedded_redis(self.embedded_redis, socket_path)

    def prepare(self, env: dict[str, str], refresh_tokens: int) -> dict[str, Any]:
        log("migrate + collectstatic + fixtures")
        _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env, "migrate")
        _run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], env, "collectstatic")
        tokens_file = self.base / f"tessera-refresh-{secrets.token_hex(4)}.txt"
        fixtures_env = {
            **env,
            "IDP_ACCESS_TOKEN_LIFETIME": "86400",
            "BENCH_REFRESH_TOKENS": str(refresh_tokens),
            "BENCH_REFRESH_TOKENS_FILE": str(tokens_file),
        }
        started = time.monotonic()
        fixtures: dict[str, Any] = json.loads(
            _run([PYTHON, "-m", "benchmarks.fixtures"], fixtures_env, "fixtures")
        )
        if refresh_tokens:
            log(f"minted {refresh_tokens} refresh tokens in {time.monotonic() - started:.0f}s")
            fixtures["refresh_tokens"] = tokens_file.read_text().split()
        return fixtures

    # --- measuring ---------------------------------------------------------------------

    def wrk(self, port: int, endpoint: Endpoint, seconds: float, lua: str) -> dict[str, int]:
        script = self.base / f"{endpoint.name}.lua"
        script.write_text(lua)
        argv = [
            self.wrk_path, "-t1", f"-c{self.args.connections}", f"-d{seconds}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{endpoint.path}",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"wrk failed on {endpoint.name}:\n{done.stdout}{done.stderr}")
        return _wrk_report(done.stdout)

    def probe(self, port: int, endpoint: Endpoint, body: str | None = None) -> None:
        status, answer = request(
            port, endpoint.method, endpoint.path, endpoint.headers, body or endpoint.body
        )
        problem = f"status {status}" if status != 200 else ""
        if not problem:
            try:
                problem = endpoint.check(json.loads(answer))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                problem = f"unexpected body ({error})"
        if problem:
            raise BenchmarkError(f"{endpoint.name} on {port}: {problem}: {answer[:400]!r}")

    def measure(self, target: str, port: int, endpoint: Endpoint) -> Measured:
        assert self.server is not None
        self.probe(port, endpoint)
        lua = endpoint.lua()
        self.wrk(port, endpoint, self.args.warmup, lua)
        return self._measured(target, port, endpoint, lua)

    def measure_refresh(
        self, target: str, port: int, endpoint: Endpoint, tokens: list[str]
    ) -> Measured:
        """Probe with one token, warm up, measure: each wrk run reads the tokens not yet
        spent from a file of its own."""
        self.probe(port, endpoint, f"grant_type=refresh_token&refresh_token={tokens.pop(0)}")
        warm = self._refresh_run(port, endpoint, self.args.warmup, tokens)
        del tokens[: warm["used"]]
        result = self._measured(target, port, endpoint, self._refresh_lua(endpoint, tokens))
        used = result.requests + self.args.connections  # in flight at the end were sent too
        result.tokens_left = max(len(tokens) - used, 0)
        return result

    def _refresh_lua(self, endpoint: Endpoint, tokens: list[str]) -> str:
        path = self.base / f"{endpoint.name}-{secrets.token_hex(4)}.tokens"
        path.write_text("\n".join(tokens) + "\n")
        report = _WRK_REPORT.replace("function init(args) not200 = 0 end\n", "").replace(
            "not200=%d ", "not200=%d used=%d "
        )
        report = report.replace(
            "summary.requests, summary.duration, bad,",
            'summary.requests, summary.duration, bad, threads[1]:get("used"),',
        )
        lines = [
            f"TOKENS_FILE = {_lua_string(str(path))}",
            f"wrk.method = {_lua_string(endpoint.method)}",
            *(
                f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}"
                for k, v in endpoint.headers.items()
            ),
        ]
        return "\n".join(lines) + "\n" + _REFRESH_LUA + report

    def _refresh_run(
        self, port: int, endpoint: Endpoint, seconds: float, tokens: list[str]
    ) -> dict[str, int]:
        return self.wrk(port, endpoint, seconds, self._refresh_lua(endpoint, tokens))

    def _measured(self, target: str, port: int, endpoint: Endpoint, lua: str) -> Measured:
        assert self.server is not None
        meter = CpuMeter(self.server.pids)
        meter.start()
        report = self.wrk(port, endpoint, self.args.duration, lua)
        user, system, wall = meter.stop()
        seconds = report["duration_us"] / 1e6
        requests = max(report["requests"], 1)
        result = Measured(
            target=target,
            endpoint=endpoint.name,
            rps=report["requests"] / seconds,
            p50_ms=report["p50_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            requests=report["requests"],
            not200=report["not200"],
            socket_errors=sum(report[k] for k in ("connect", "read", "write", "timeout")),
            server_cpu_pct=100 * (user + system) / wall,
            server_cpu_us_per_req=1e6 * (user + system) / requests,
        )
        self.results.append(result)
        log(f"{target} {endpoint.name}: {result.rps:.0f}/s p50 {result.p50_ms:.2f} ms "
            f"p99 {result.p99_ms:.2f} ms not200 {result.not200}")  # fmt: skip
        return result

    # --- endpoints -----------------------------------------------------------------------

    @staticmethod
    def _alg_check(alg: str) -> Callable[[Any], str]:
        def check(document: Any) -> str:
            token = document.get("access_token", "")
            head = token.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
            return "" if header.get("alg") == alg else f"token alg {header.get('alg')}, not {alg}"

        return check

    @classmethod
    def _refresh_check(cls, document: Any) -> str:
        if not document.get("refresh_token"):
            return "no rotated refresh_token"
        return cls._alg_check("ES256")(document)

    def tessera_endpoints(self, fx: dict[str, Any], port: int) -> dict[str, Endpoint]:
        form = "application/x-www-form-urlencoded"

        def basic(client_id: str, secret: str) -> str:
            return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()

        issuer = f"http://127.0.0.1:{port}"
        return {
            "bare": Endpoint(
                "bare", "GET", "/bench/bare", check=lambda d: "" if d == {"ok": True} else "?"
            ),
            "discovery": Endpoint(
                "discovery",
                "GET",
                "/.well-known/openid-configuration",
                check=lambda d: "" if d["issuer"] == issuer else "wrong issuer",
            ),
            "client_credentials_es256": Endpoint(
                "client_credentials_es256",
                "POST",
                "/oauth/token",
                {
                    "Authorization": basic(fx["service_client_id"], fx["service_client_secret"]),
                    "Content-Type": form,
                },
                "grant_type=client_credentials",
                check=self._alg_check("ES256"),
            ),
            "refresh_token": Endpoint(
                "refresh_token",
                "POST",
                "/oauth/token",
                {
                    "Authorization": basic(fx["webapp_client_id"], fx["webapp_client_secret"]),
                    "Content-Type": form,
                },
                check=self._refresh_check,
            ),
        }

    # --- the two comparisons -------------------------------------------------------------

    def start_tessera(self, name: str, kind: str, env: dict[str, str]) -> None:
        port = int(env["PORT"])
        self.server = ServerProcess(
            name, tessera_argv(kind, port), env, self.placement.server,
            self.base / f"{name}.log", port,
        )  # fmt: skip
        log(f"{name}: {' '.join(self.server.argv[1:])} on CPU {_cpus(self.placement.server)}")
        self.server.start()

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def compare_servers(self) -> None:
        from tests.servers import free_port

        self.start_postgres_redis()
        port = free_port()
        fixtures = self.prepare(self.postgres_env(port), 0)
        endpoints = self.tessera_endpoints(fixtures, port)
        for kind in self.args.kinds:
            self.start_tessera(kind, kind, self.postgres_env(port))
            try:
                for name in ("bare", "discovery", "client_credentials_es256"):
                    self.measure(kind, port, endpoints[name])
            finally:
                self.stop_server()

    def compare_reference(self) -> None:
        from tests.servers import free_port

        self.measure_node()
        storages = (
            ["postgres_redis", "embedded"] if not self.args.postgres_only else ["postgres_redis"]
        )
        for storage in storages:
            port = free_port()
            if storage == "postgres_redis":
                self.start_postgres_redis()
                env = self.postgres_env(port)
            else:
                env = self.embedded_env(port)
                self.start_bundled_redis(env)
            fixtures = self.prepare(env, self.args.refresh_tokens)
            endpoints = self.tessera_endpoints(fixtures, port)
            target = f"tessera_{storage}"
            self.start_tessera(target, self.args.tessera_server, env)
            try:
                self.measure(target, port, endpoints["bare"])
                self.measure(target, port, endpoints["client_credentials_es256"])
                self.measure_refresh(
                    target, port, endpoints["refresh_token"], fixtures["refresh_tokens"]
                )
            finally:
                self.stop_server()
            if storage == "postgres_redis":
                for server in self.backing:
                    server.stop()
                self.backing = []

    def measure_node(self) -> None:
        from tests.servers import free_port

        if shutil.which("node") is None or shutil.which("npm") is None:
            raise BenchmarkError("node and npm are needed: apt-get install -y nodejs npm")
        log("npm ci in benchmarks/node_reference/")
        _run(
            ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
             "--loglevel=error"],
            dict(os.environ), "npm ci",
        )  # fmt: skip
        port = free_port()
        tokens_file = self.base / "node-refresh.txt"
        env = {
            **os.environ,
            "PORT": str(port),
            "ISSUER": f"http://127.0.0.1:{port}",
            "CLIENT_SECRET": NODE_SECRET,
            "REFRESH_TOKENS": str(self.args.node_refresh_tokens),
            "REFRESH_TOKENS_FILE": str(tokens_file),
            "NODE_ENV": "production",
        }
        self.server = ServerProcess(
            "node_oidc_provider", ["node", "server.js"], env, self.placement.server,
            self.base / "node.log", port, cwd=NODE_DIR,
            ready_path="/.well-known/openid-configuration",
        )  # fmt: skip
        log(f"node-oidc-provider on CPU {_cpus(self.placement.server)}")
        self.server.start()
        form = "application/x-www-form-urlencoded"
        auth = "Basic " + base64.b64encode(f"benchmark-client:{NODE_SECRET}".encode()).decode()
        headers = {"Authorization": auth, "Content-Type": form}
        try:
            self.measure(
                "node_oidc_provider",
                port,
                Endpoint(
                    "client_credentials_es256", "POST", "/token", headers,
                    "grant_type=client_credentials", check=self._alg_check("ES256"),
                ),
            )  # fmt: skip
            tokens = tokens_file.read_text().split()
            self.measure_refresh(
                "node_oidc_provider",
                port,
                Endpoint("refresh_token", "POST", "/token", headers, check=self._refresh_check),
                tokens,
            )
        finally:
            self.stop_server()

    # --- the run -------------------------------------------------------------------------

    def run(self) -> None:
        self.wrk_path = ensure_wrk()
        started = time.monotonic()
        os.sched_setaffinity(0, self.placement.others)
        self.secret_key = secrets.token_urlsafe(64)
        self.kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        if self.args.comparison == "servers":
            self.compare_servers()
        else:
            self.compare_reference()
        self.report(time.monotonic() - started)

    def stop(self) -> None:
        self.stop_server()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        for server in self.backing:
            try:
                server.stop()
            except Exception as error:
                log(f"could not stop {server}: {error}")
        shutil.rmtree(self.base, ignore_errors=True)

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
            f"config comparison={self.args.comparison} connections={self.args.connections} "
            f"wrk_threads=1 warmup_s={self.args.warmup} duration_s={self.args.duration} "
            f"log_level={self.args.log_level} elapsed_s={elapsed:.0f}"
        )
        bare = {r.target: r for r in self.results if r.endpoint == "bare"}
        node = {r.endpoint: r for r in self.results if r.target == "node_oidc_provider"}
        for r in self.results:
            line = (
                f"target={r.target} endpoint={r.endpoint} rps={r.rps:.1f} "
                f"p50_ms={r.p50_ms:.2f} p99_ms={r.p99_ms:.2f} requests={r.requests} "
                f"not200={r.not200} socket_errors={r.socket_errors} "
                f"server_cpu_pct={r.server_cpu_pct:.0f} "
                f"server_cpu_us_per_req={r.server_cpu_us_per_req:.0f}"
            )
            if r.target in bare:
                line += f" ratio_vs_bare={r.rps / bare[r.target].rps:.2f}"
            if r.target != "node_oidc_provider" and r.endpoint in node:
                line += f" ratio_vs_node={r.rps / node[r.endpoint].rps:.2f}"
            if r.tokens_left >= 0:
                line += f" tokens_left={r.tokens_left}"
            print(line)
        goals = {"client_credentials_es256": 0.5, "refresh_token": 0.3}
        for r in self.results:
            if r.target.startswith("tessera") and r.endpoint in goals and r.endpoint in node:
                ratio = r.rps / node[r.endpoint].rps
                verdict = "met" if ratio >= goals[r.endpoint] and r.not200 == 0 else "not_met"
                print(
                    f"target_vs_node target={r.target} endpoint={r.endpoint} "
                    f"goal=ratio>={goals[r.endpoint]:.2f} ratio={ratio:.2f} verdict={verdict}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comparison", choices=("servers", "reference"))
    parser.add_argument("--warmup", type=int, default=3, help="seconds before measuring")
    parser.add_argument("--duration", type=int, default=10, help="seconds measured")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    parser.add_argument(
        "--kinds", nargs="+", default=list(SERVER_KINDS), choices=SERVER_KINDS,
        help="servers: the web servers compared",
    )  # fmt: skip
    parser.add_argument(
        "--tessera-server", default="production", choices=SERVER_KINDS,
        help="reference: the server Tessera runs on (production: what idp.serve runs)",
    )  # fmt: skip
    parser.add_argument(
        "--refresh-tokens", type=int, default=2000,
        help="reference: refresh tokens minted for Tessera, each by a real code flow",
    )  # fmt: skip
    parser.add_argument(
        "--node-refresh-tokens", type=int, default=60000,
        help="reference: refresh tokens node-oidc-provider seeds its adapter with",
    )  # fmt: skip
    parser.add_argument(
        "--postgres-only", action="store_true", help="reference: skip the embedded default"
    )
    return run_benchmark(Run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
