"""`manage.py` against a database that is missing or not migrated: one paragraph that names the
database and says what to do, exit status 1, no traceback (idp/cli.py). Commands that set a
database up, or work on an empty one, are unaffected."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.servers import TestServers

ROOT = Path(__file__).resolve().parents[2]
# The suite points these at its own servers; the embedded default has none of them.
SERVICE_URLS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CLICKHOUSE_URL")


def manage(data_dir: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_URLS}
    env.update({"IDP_DATA_DIR": str(data_dir), **environ})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def said(result: subprocess.CompletedProcess[str]) -> str:
    """stderr as one line: the paragraph is wrapped for a terminal."""
    return " ".join(result.stderr.split())


OPERATOR_COMMANDS = [
    ("createuser", "--email", "x@example.com"),
    ("createclient", "--name", "Backend job", "--grant", "client_credentials"),
]


@pytest.mark.parametrize("command", OPERATOR_COMMANDS, ids=lambda argv: argv[0])
def test_command_on_an_empty_data_dir_says_to_migrate_without_a_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = manage(tmp_path, *command)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = said(result)
    assert f"manage.py {command[0]}: the database {tmp_path / 'idp.sqlite3'}" in message
    assert f"IDP_DATA_DIR={tmp_path}" in message
    assert "has not been set up" in message
    assert "start `make run` once (it migrates)" in message
    assert "`manage.py migrate` with the same IDP_DATA_DIR/DATABASE_URL" in message
    assert result.stdout == ""


def test_partly_migrated_database_names_what_is_not_applied(tmp_path: Path) -> None:
    assert manage(tmp_path, "migrate", "accounts", "--verbosity", "0").returncode == 0

    result = manage(
        tmp_path, "createclient", "--name", "Backend job", "--grant", "client_credentials"
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = said(result)
    assert "is not migrated to this version of the code" in message
    assert "no such table: tokens_client" in message
    assert "`manage.py migrate`" in message


def test_missing_data_dir_is_a_missing_database(tmp_path: Path) -> None:
    # With both secrets in the environment nothing creates the data dir, so SQLite cannot
    # create its file either.
    absent = tmp_path / "never-created"
    secrets = {"IDP_SECRET_KEY": "k" * 64, "IDP_KEY_ENCRYPTION_KEY": "A" * 43}

    result = manage(absent, "createuser", "--email", "x@example.com", **secrets)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{absent / 'idp.sqlite3'}" in said(result)
    assert "does not exist" in said(result)


@pytest.fixture
def empty_postgres_database(servers: TestServers) -> Iterator[str]:
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers.postgres.url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(servers.postgres.url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_empty_postgresql_database_is_named_without_its_password(
    tmp_path: Path, servers: TestServers, empty_postgres_database: str
) -> None:
    # The suite's PostgreSQL trusts loopback connections, so any password gets in.
    url = servers.postgres.url(empty_postgres_database).replace(
        "://tessera@", "://tessera:pw-s3cret@"
    )

    result = manage(tmp_path, "createuser", "--email", "x@example.com", DATABASE_URL=url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = said(result)
    assert f"/{empty_postgres_database} (DATABASE_URL) has not been set up" in message
    assert 'relation "accounts_user" does not exist' in message
    assert "pw-s3cret" not in result.stderr


def test_absent_postgresql_database_says_it_does_not_exist(
    tmp_path: Path, servers: TestServers
) -> None:
    url = servers.postgres.url("no_such_database")

    result = manage(tmp_path, "createuser", "--email", "x@example.com", DATABASE_URL=url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "/no_such_database (DATABASE_URL) does not exist" in said(result)
