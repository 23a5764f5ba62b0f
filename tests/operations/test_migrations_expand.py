"""Rolling upgrades: every migration of ours is an "expand" step that the release before it
still runs with (docs/operations.md, "Rolling upgrades").

During a rolling update old and new web pods serve side by side on one database, and the
migration runs before the first new pod (deploy/kubernetes/base/migrate-job.yaml). So a
migration may only add what old code ignores — tables, nullable columns, columns with a
database default (db_default), indexes — and never remove, rename or tighten what old code
reads or writes. Removing ("contract") happens in a later release, once no running code uses
the column, and is listed in CONTRACT_OR_PAST below with the reason.

Checked from the migration files (Django's MigrationLoader, no database): each operation of
each migration of apps/ against the model state just before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.models import ModelOperation
from django.db.migrations.state import ProjectState
from django.db.models.fields import NOT_PROVIDED

# Migrations that old code cannot run beside, each with why it was accepted. Those before
# the rule (December 2026) are history: each went out with the code that needed it, a short
# restart rather than a rolling update. A new entry is a contract step (a column no running
# release reads any more) or a documented exception with its upgrade instructions.
CONTRACT_OR_PAST: dict[tuple[str, str], str] = {
    ("accounts", "0003_user_email_case_insensitive"): (
        "before the rule: a unique index on lower(email); old code could insert an address "
        "differing only in case"
    ),
    ("accounts", "0004_user_staff_role"): (
        "before the rule: staff_role NOT NULL with a Python default only, and a check "
        "constraint old code's staff rows would violate"
    ),
    ("accounts", "0005_user_email_verified"): "before the rule: NOT NULL, Python default only",
    ("accounts", "0007_mfa_required"): "before the rule: NOT NULL, Python default only",
    ("accounts", "0008_blocked"): "before the rule: NOT NULL, Python default only",
    ("core", "0003_event_record"): "before the rule: NOT NULL, Python default only",
    ("login_sessions", "0002_binding_and_clients"): (
        "before the rule: NOT NULL, Python default only"
    ),
    ("tokens", "0005_logout_propagation"): "before the rule: NOT NULL, Python default only",
    ("tokens", "0006_offline_grant_require_pkce"): (
        "before the rule: NOT NULL, Python default only"
    ),
    ("tokens", "0009_client_require_mfa"): "before the rule: NOT NULL, Python default only",
    ("tokens", "0010_client_require_par"): "before the rule: NOT NULL, Python default only",
    ("tokens", "0011_sender_constrained"): "before the rule: NOT NULL, Python default only",
}

# Operations that only add what old code never reads, or change Django's state alone.
_EXPAND = (
    migrations.CreateModel,
    migrations.AddIndex,
    migrations.RemoveIndex,  # queries still run, perhaps slower: see the docs
    migrations.RenameIndex,
    migrations.RemoveConstraint,  # relaxes
    migrations.AlterModelOptions,
    migrations.AlterModelManagers,
    migrations.RunPython,  # a backfill; it must leave rows valid for old code too (review)
)
# Field attributes that change nothing in the database, or nothing old code relies on.
_NOT_IN_DATABASE = {
    "blank", "choices", "default", "editable", "error_messages", "help_text",
    "limit_choices_to", "related_name", "related_query_name", "validators", "verbose_name",
    "on_delete",  # Django emulates ON DELETE in Python: each release applies its own
    "db_comment",
}  # fmt: skip


def _column_safe(field: models.Field[Any, Any]) -> bool:
    """A column old code's INSERTs (which do not name it) still satisfy."""
    if field.many_to_many:
        return True  # a join table of its own
    return bool(field.null) or field.db_default is not NOT_PROVIDED


def _alter_problem(old: models.Field[Any, Any], new: models.Field[Any, Any]) -> str:
    old_kwargs, new_kwargs = old.deconstruct()[3], new.deconstruct()[3]
    if type(old) is not type(new):
        return f"changes the type {type(old).__name__} → {type(new).__name__}"
    for key in sorted((set(old_kwargs) | set(new_kwargs)) - _NOT_IN_DATABASE):
        before, after = old_kwargs.get(key), new_kwargs.get(key)
        if before == after:
            continue
        if key == "null" and after:
            continue  # NOT NULL → NULL relaxes
        if key == "max_length" and before is not None and after is not None and after > before:
            continue  # widening
        if key == "db_default":
            continue  # old code never relies on it
        return f"changes {key} {before!r} → {after!r}"
    return ""


def _model_of(operation: migrations.operations.base.Operation) -> str | None:
    if isinstance(operation, ModelOperation):
        return operation.name_lower
    return getattr(operation, "model_name_lower", None)  # field, index, constraint operations


def contract_problems(
    operations: Iterable[migrations.operations.base.Operation], app: str, state: ProjectState
) -> list[str]:
    """What in `operations` (applied from `state`, which it advances) old code cannot run
    beside. Empty: an expand-only migration."""
    problems: list[str] = []
    created: set[str] = set()  # tables this migration makes: old code never touches them
    for operation in operations:
        name = type(operation).__name__
        if isinstance(operation, migrations.CreateModel):
            created.add(operation.name_lower)
        elif _model_of(operation) in created:
            operation.state_forwards(app, state)
            continue
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            # Only the database half touches what old code sees; the state half moves models.
            problems += contract_problems(operation.database_operations, app, state.clone())
            for state_operation in operation.state_operations:
                state_operation.state_forwards(app, state)
            continue
        if isinstance(operation, migrations.AddField):
            if not _column_safe(operation.field):
                problems.append(
                    f"AddField {operation.model_name}.{operation.name}: NOT NULL without "
                    "db_default (old code's INSERTs fail): use null=True or db_default"
                )
        elif isinstance(operation, migrations.AlterField):
            model = state.models[app, operation.model_name_lower]
            problem = _alter_problem(model.fields[operation.name], operation.field)
            if problem:
                problems.append(f"AlterField {operation.model_name}.{operation.name}: {problem}")
        elif not isinstance(operation, _EXPAND):
            # RemoveField, DeleteModel, RenameField, RenameModel, AlterModelTable,
            # AddConstraint, AlterUniqueTogether, RunSQL, and anything not known to be safe.
            problems.append(f"{name}: {operation.describe()}")
        operation.state_forwards(app, state)
    return problems


@pytest.fixture(scope="module")
def loader() -> MigrationLoader:
    return MigrationLoader(None, ignore_no_migrations=True)


def _our_apps() -> set[str]:
    configs = django_apps.get_app_configs()
    return {config.label for config in configs if config.name.startswith("apps.")}


def _flagged(loader: MigrationLoader) -> dict[tuple[str, str], list[str]]:
    ours = _our_apps()
    flagged = {}
    for key, migration in sorted(loader.disk_migrations.items()):
        if key[0] not in ours:
            continue
        state = loader.project_state(key, at_end=False)
        problems = contract_problems(migration.operations, key[0], state)
        if problems:
            flagged[key] = problems
    return flagged


def test_every_migration_of_ours_is_expand_only_or_listed(loader: MigrationLoader) -> None:
    flagged = _flagged(loader)
    unlisted = {key: problems for key, problems in flagged.items() if key not in CONTRACT_OR_PAST}
    assert unlisted == {}, (
        "migrations the previous release cannot run beside (docs/operations.md, 'Rolling "
        f"upgrades'): split them into expand and a later contract step: {unlisted}"
    )
    # The list names only what the check flags: an entry that passes, or is gone, goes.
    assert set(CONTRACT_OR_PAST) <= set(flagged), set(CONTRACT_OR_PAST) - set(flagged)
    print(f"migrations_checked={sum(k[0] in _our_apps() for k in loader.disk_migrations)} "
          f"listed={len(CONTRACT_OR_PAST)}")  # fmt: skip


def _state_with_user(loader: MigrationLoader) -> ProjectState:
    return loader.project_state(("accounts", "0008_blocked"), at_end=True)


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (migrations.RemoveField("user", "email_verified"), "RemoveField"),
        (migrations.RenameField("user", "email_verified", "verified"), "RenameField"),
        (migrations.DeleteModel("Organization"), "DeleteModel"),
        (migrations.RunSQL("ALTER TABLE accounts_user DROP COLUMN blocked"), "RunSQL"),
        (
            migrations.AddField("user", "nickname", models.CharField(max_length=20, default="")),
            "NOT NULL without db_default",
        ),
        (
            migrations.AlterField("user", "staff_role", models.CharField(max_length=8)),
            "changes max_length 16 → 8",
        ),
        (
            migrations.AlterField("user", "last_login", models.DateTimeField()),
            "changes null True → None",
        ),
    ],
)
def test_the_check_flags_what_old_code_cannot_run_beside(
    loader: MigrationLoader, operation: migrations.operations.base.Operation, expected: str
) -> None:
    problems = contract_problems([operation], "accounts", _state_with_user(loader))
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(
    "operation",
    [
        migrations.AddField("user", "nickname", models.CharField(max_length=20, null=True)),
        migrations.AddField(
            "user", "nickname", models.CharField(max_length=20, db_default="", default="")
        ),
        migrations.AlterField(
            "user", "staff_role", models.CharField(max_length=32, blank=True, default="")
        ),
        migrations.CreateModel("Nickname", [("id", models.BigAutoField(primary_key=True))]),
        migrations.AddIndex("user", models.Index(fields=["blocked"], name="user_blocked_idx")),
    ],
)
def test_the_check_passes_what_old_code_ignores(
    loader: MigrationLoader, operation: migrations.operations.base.Operation
) -> None:
    assert contract_problems([operation], "accounts", _state_with_user(loader)) == []
