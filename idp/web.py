"""The production web server: `python -m idp.web`. `make run` (idp/serve.py), deploy/ and the
tests all start Tessera with this command.

granian (WSGI), chosen by measurement (benchmarks/README.md, "Web servers"): the least CPU per
request of gunicorn sync/gthread, granian and uvicorn serving Tessera on one core. Its HTTP
parsing, keep-alive and TLS run in Rust on an async runtime, so a client that is slow to send
its headers holds no thread; Django runs in WEB_THREADS threads per worker. Every value comes
from idp.settings (the environment); the command is built here and exec'd, so the process
that runs is exactly the argv printed by `python -m idp.web --print-argv`.

With TLS (IDP_TLS_CERT_FILE/IDP_TLS_KEY_FILE, or IDP_TLS_DEV_CERT) this process stays as a
small supervisor instead: it runs that argv as its child, forwards SIGTERM/SIGINT, and
reloads the certificate when its files change (Supervisor; docs/tls.md).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from idp import serve, tls

# Headers and request line are buffered up to this many bytes (granian's default,
# --http1-buffer-size), far above the guard's own limits (apps/core/request_limits.py), so
# the guard answers over-long URLs and headers with the project's error, not granian's.
HTTP1_BUFFER_BYTES = 417_792
GRACEFUL_STOP_SECONDS = 10  # a stopping worker finishes its requests for this long
# On SIGHUP (a rotated certificate) granian starts a new worker and stops the old one this
# many seconds later, whether or not the new one serves yet; while neither does, connections
# are refused. A worker starts in 1.5-5.8 s measured on a loaded 2-core host (docs/tls.md),
# so twice the worst of that. A reload takes this long per worker.
RELOAD_OVERLAP_SECONDS = 12


def log_config(level: str) -> dict[str, Any]:
    """granian's own lines (start, stop, errors) as the same JSON lines as Django's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
        "handlers": {"stdout": handler},
        "loggers": {
            "_granian": {"handlers": ["stdout"], "level": level, "propagate": False},
            "tessera.tls": {"handlers": ["stdout"], "level": level, "propagate": False},
            # Off: the request-context middleware writes the access log line (JSON, with the
            # request id); granian's would be a second, unstructured one.
            "granian.access": {"handlers": ["stdout"], "level": "CRITICAL", "propagate": False},
        },
    }


def argv(
    python: str, settings: Any, log_config_path: Path, tls_files: tuple[Path, Path] | None
) -> list[str]:
    command = [
        python, "-m", "granian", "--interface", "wsgi",
        "--host", settings.BIND_HOST, "--port", str(settings.PORT),
        "--workers", str(settings.WEB_WORKERS),
        "--blocking-threads", str(settings.WEB_THREADS),
        "--no-ws",
        "--respawn-failed-workers",  # a worker that dies is replaced, as gunicorn's master did
        "--workers-kill-timeout", str(GRACEFUL_STOP_SECONDS),
        "--respawn-interval", str(RELOAD_OVERLAP_SECONDS),
        "--http1-buffer-size", str(HTTP1_BUFFER_BYTES),
        "--log-level", settings.LOG_LEVEL.lower(),
        "--log-config", str(log_config_path),
        "--no-access-log",
    ]  # fmt: skip
    if tls_files is not None:
        # rustls: TLS 1.2 only with ECDHE + AEAD suites (it has no other), groups X25519,
        # P-256, P-384, ALPN h2 and http/1.1 (--http auto). docs/tls.md.
        command += [
            "--ssl-certificate", str(tls_files[0]),
            "--ssl-keyfile", str(tls_files[1]),
            "--ssl-protocol-min", f"tls{settings.TLS_MIN_VERSION}",
        ]  # fmt: skip
    return [*command, "idp.wsgi:application"]


def served_tls_files(run_dir: Path) -> tuple[Path, Path]:
    """Where this server keeps the checked copy of the pair granian reads (idp/tls.py); the
    copies of servers that died without cleaning up (SIGKILL) are removed first."""
    for stale in run_dir.glob("tls.*"):
        pid = stale.suffix.lstrip(".")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    directory = run_dir / f"tls.{os.getpid()}"
    return directory / "cert.pem", directory / "key.pem"


def _log(level: int, message: str, **fields: object) -> None:
    logging.getLogger("tessera.tls").log(level, message, extra=fields)


def _install(pair: tls.Pair, files: tuple[Path, Path]) -> None:
    files[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls.write_private(files[1], pair.key_pem)
    tls.write_private(files[0], pair.chain_pem)


class Supervisor:
    """Runs granian as a child and reloads its certificate when the pair's files change.

    granian reads the pair when a worker starts and respawns its workers on SIGHUP: a new
    worker first, the old one stopped RELOAD_OVERLAP_SECONDS later, on the same listening
    socket. It is given a copy made only from a pair that loads (tls.load_pair): a broken
    pair written mid-rotation is logged and ignored, and a worker that restarts later for
    another reason still finds the last good one.
    """

    def __init__(self, source: tuple[Path, Path], served: tuple[Path, Path]) -> None:
        self.source = source
        self.served = served
        self.watch = tls.Watch(*source)
        self.child: subprocess.Popen[bytes] | None = None
        self.reload_asked = False

    def install(self) -> tls.Pair:
        pair = tls.load_pair(*self.source)
        _install(pair, self.served)
        return pair

    def reload(self) -> None:
        try:
            pair = self.install()
        except tls.PairError as error:
            _log(logging.ERROR, "new TLS pair refused; the previous one keeps serving",
                 event="tls.reload_refused", reason=str(error))  # fmt: skip
            return
        _log(logging.INFO, "TLS pair reloaded", event="tls.reloaded", serial=f"{pair.serial:x}",
             subject=pair.subject, not_after=pair.not_after.isoformat())  # fmt: skip
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGHUP)

    def run(self, command: list[str]) -> int:
        def forward(signum: int, frame: FrameType | None) -> None:
            if self.child is not None and self.child.poll() is None:
                self.child.send_signal(signum)

        def ask_reload(signum: int, frame: FrameType | None) -> None:
            self.reload_asked = True  # `kill -HUP`: read the pair now, as a change would

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGHUP, ask_reload)
        self.child = subprocess.Popen(command, preexec_fn=serve.die_with_parent)  # noqa: S603 - built from settings
        try:
            while True:
                try:
                    code = self.child.wait(tls.WATCH_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
                else:
                    return 128 - code if code < 0 else code  # killed by a signal: as a shell says
                if self.watch.changed() or self.reload_asked:
                    self.reload_asked = False
                    self.reload()
        finally:
            if self.child.poll() is None:
                self.child.kill()
            shutil.rmtree(self.served[0].parent, ignore_errors=True)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    from django.conf import settings

    run_dir = settings.DATA_DIR / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "granian-logging.json"
    # Written whole, then renamed: servers starting together on one data dir never read half.
    partial = run_dir / f".granian-logging.{os.getpid()}.json"
    partial.write_text(json.dumps(log_config(settings.LOG_LEVEL)))
    partial.replace(config_path)
    served = served_tls_files(run_dir) if settings.TLS_CERT_FILE is not None else None
    command = argv(sys.executable, settings, config_path, served)
    if "--print-argv" in sys.argv[1:]:
        print(json.dumps(command))
        return
    from apps.core import metrics

    # Emptied now, and named to granian's workers through the environment they inherit: each
    # writes its counters there (apps/core/metrics.py), /metrics adds them up.
    metrics.start_role(settings.METRICS_DIR, "web")
    if served is None:
        sys.stdout.flush()
        os.execv(sys.executable, command)  # noqa: S606 - argv built above from settings
    logging.config.dictConfig(log_config(settings.LOG_LEVEL))
    cert_file, key_file = settings.TLS_CERT_FILE, settings.TLS_KEY_FILE
    if cert_file is None or key_file is None:  # settings refuse one without the other
        raise SystemExit("tessera: IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE go together")
    source = (cert_file, key_file)
    supervisor = Supervisor(source, served)
    try:
        pair = supervisor.install()
    except tls.PairError as error:
        raise SystemExit(f"tessera: the TLS pair cannot be served: {error}") from error
    _log(logging.INFO, "TLS pair loaded", event="tls.loaded", serial=f"{pair.serial:x}",
         subject=pair.subject, not_after=pair.not_after.isoformat())  # fmt: skip
    sys.exit(supervisor.run(command))


if __name__ == "__main__":
    main()
