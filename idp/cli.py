"""`manage.py`: Django's command line, with a missing or unmigrated database explained.

A command run against a database that has no tables (a fresh IDP_DATA_DIR, or another
environment than the one `make run` was started with) would otherwise end in a `no such table`
traceback. Here it ends in one paragraph that names the database and says what to do, with
exit status 1. Commands that work on an empty database, or set one up, are left alone.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from django.db.utils import OperationalError, ProgrammingError

from idp import env

# Commands whose business is the schema itself, or that never need the tables: any database
# error they meet is theirs to report, with its traceback.
UNTOUCHED_COMMANDS = frozenset(
    {
        "audit_migrate",
        "check",
        "collectstatic",
        "dbshell",
        "flush",
        "help",
        "makemigrations",
        "migrate",
        "optimizemigration",
        "shell",
        "showmigrations",
        "sqlmigrate",
        "squashmigrations",
        "test",
        "testserver",
    }
)

# SQLite and PostgreSQL saying the schema is not there (PostgreSQL 42P01 / 42703).
_MISSING_SCHEMA = re.compile(
    r"no such table|no such column|relation \S+ does not exist|column \S+ does not exist"
)
# The database itself is not there: PostgreSQL 3D000 at connect, SQLite's folder missing.
_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist|unable to open database file')


def execute(argv: list[str]) -> int:
    """Run a management command; 1 with an explanation when the database is not set up."""
    from django.core.management import execute_from_command_line

    command = argv[1] if len(argv) > 1 else "help"
    if command in UNTOUCHED_COMMANDS or command.startswith("-"):
        execute_from_command_line(argv)
        return 0
    try:
        execute_from_command_line(argv)
    except (OperationalError, ProgrammingError) as error:
        message = _explain(command, error)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1
    return 0


def _explain(command: str, error: Exception) -> str | None:
    """The paragraph for a database that is missing or behind its migrations; None when the
    error is something else (then the traceback is the useful answer)."""
    said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = f"manage.py {command}: the database {_describe_database()}"
    same_environment = (
        "manage.py works on the database its environment names: if `make run` is running "
        "with another IDP_DATA_DIR or DATABASE_URL, run manage.py with the same ones."
    )
    if _MISSING_DATABASE.search(said) and _database_is_absent():
        return _paragraph(
            f"{where} does not exist ({said}). {same_environment} To create a new one: start "
            "`make run` once with this environment (it migrates), or create the database "
            "(PostgreSQL: createdb) and run `manage.py migrate` with the same "
            "IDP_DATA_DIR/DATABASE_URL."
        )
    if not _MISSING_SCHEMA.search(said):
        return None
    pending = _pending_migrations()
    if pending is not None and not pending[1]:
        return None  # fully migrated, yet a table is missing: a real fault, keep the traceback
    if pending is None or not pending[0]:
        return _paragraph(
            f"{where} has not been set up: it has no tables ({said}). {same_environment} "
            "To set this database up, start `make run` once (it migrates), or run "
            "`manage.py migrate` with the same IDP_DATA_DIR/DATABASE_URL as your make run."
        )
    missing = pending[1]
    return _paragraph(
        f"{where} is not migrated to this version of the code: {len(missing)} migration"
        f"{'s are' if len(missing) > 1 else ' is'} not applied, starting with {missing[0]} "
        f"({said}). Run `manage.py migrate` with the same IDP_DATA_DIR/DATABASE_URL as your "
        "make run, or restart `make run` (it migrates)."
    )


def _describe_database() -> str:
    """The database in use, as an operator would name it; never with its password."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        path = Path(str(database["NAME"]))
        if env.optional_string("DATABASE_URL"):
            return f"{path} (DATABASE_URL)"
        data_dir = settings.DATA_DIR
        if env.optional_string("IDP_DATA_DIR"):
            return f"{path} (the SQLite file in IDP_DATA_DIR={data_dir}; DATABASE_URL is not set)"
        return (
            f"{path} (the SQLite file in the default data dir {data_dir}: neither "
            "IDP_DATA_DIR nor DATABASE_URL is set)"
        )
    user = f"{database.get('USER')}@" if database.get("USER") else ""
    port = f":{database.get('PORT')}" if database.get("PORT") else ""
    return (
        f"postgresql://{user}{database.get('HOST') or ''}{port}/{database['NAME']} (DATABASE_URL)"
    )


def _database_is_absent() -> bool:
    """PostgreSQL said so; SQLite creates a missing file, so only a missing folder counts
    (its "unable to open" on a file that is there is about permissions, not absence)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return True
    return not Path(str(database["NAME"])).exists()


def _pending_migrations() -> tuple[list[str], list[str]] | None:
    """(applied, not applied) migrations of the default database; None if it cannot say."""
    from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.close()  # a fresh connection: the failed statement may have spoilt this one
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        applied = executor.loader.applied_migrations
    except DatabaseError:
        return None
    return (
        [f"{app}.{name}" for app, name in applied],
        [f"{migration.app_label}.{migration.name}" for migration, _ in plan],
    )


def _paragraph(text: str) -> str:
    # Paths, URLs and `commands` are never broken across lines, so they can be copied.
    kept = re.sub(r"`[^`]+`", lambda quoted: quoted.group().replace(" ", "\0"), text)
    wrapped = textwrap.fill(kept, width=100, break_long_words=False, break_on_hyphens=False)
    return wrapped.replace("\0", " ")
