"""stdout is JSON lines only (issue 19): a Celery worker (prefork, with beat embedded as
`make run` starts it) is started and stopped, and every line it wrote to stdout parses as a
JSON object; Celery's banner, warnings and shutdown messages included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests import servers as suite
from tests.servers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


@pytest.mark.django_db(transaction=True)
def test_a_worker_started_and_stopped_writes_only_json_lines(
    servers: suite.TestServers, tmp_path: Path
) -> None:
    from idp.celery import app

    hostname = f"stdout-test-{os.getpid()}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
        "IDP_DATA_DIR": str(tmp_path / "data"),
        "IDP_AUDIT_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "idp", "worker", "--concurrency", "2",
             "--without-mingle", "--without-gossip", "-B", "-s", str(tmp_path / "schedule"),
             "--loglevel", "INFO", "-n", hostname],
            cwd=ROOT, env=env, stdout=out, stderr=err,
        )  # fmt: skip
        try:
            wait_for(
                lambda: (
                    process.poll() is None and app.control.ping(destination=[hostname], timeout=0.5)
                ),
                60,
                "the worker did not answer a ping",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
    # The shutdown line is Celery's own write to stdout; log lines go where logging sends them.
    lines = _lines(stdout) + _lines(stderr)
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], "\n".join(not_json[:20])
    messages = [json.loads(line)["msg"] for line in lines]
    assert "celery worker starting" in messages  # the banner, as one line
    assert f"{hostname} ready." in messages
    assert "worker: Warm shutdown (MainProcess)" in messages


def _is_json_object(line: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and {"ts", "level", "logger", "msg"} <= set(entry)


def test_beat_on_its_own_writes_only_json_lines(servers: suite.TestServers, tmp_path: Path) -> None:
    # Production runs exactly one `celery beat` of its own (deploy/kubernetes beat-deployment).
    env = {**os.environ, "IDP_DATA_DIR": str(tmp_path / "data")}
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "idp", "beat", "-s", str(tmp_path / "schedule"),
             "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=err,
        )  # fmt: skip
        try:
            wait_for(
                # beat_init (idp/celery.py) makes beat's metrics folder once its scheduler runs.
                lambda: (
                    process.poll() is not None
                    or (tmp_path / "data" / "run" / "metrics" / f"beat-{process.pid}").is_dir()
                ),
                60,
                "beat did not start",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
    lines = _lines(stdout) + _lines(stderr)
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], "\n".join(not_json[:20])
    messages = [json.loads(line)["msg"] for line in lines]
    assert "celery beat starting" in messages
