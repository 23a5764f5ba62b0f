from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.audit import clickhouse_schema
from apps.core.clickhouse import CLICKHOUSE_FAILURES, get_clickhouse


class Command(BaseCommand):
    help = (
        "Create or upgrade the audit tables in ClickHouse (CLICKHOUSE_URL): applies the "
        "migrations of apps/audit/clickhouse_schema.py not yet recorded in "
        f"{clickhouse_schema.MIGRATIONS_TABLE}, in order. Running it again does nothing."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.CLICKHOUSE_URL is None:
            raise CommandError("CLICKHOUSE_URL is not set: audit events stay in the database")
        client = get_clickhouse()
        try:
            client.execute(clickhouse_schema.CREATE_MIGRATIONS_TABLE)
            applied = {version for (version,) in client.execute(clickhouse_schema.APPLIED_VERSIONS)}
            pending = [m for m in clickhouse_schema.MIGRATIONS if m.version not in applied]
            if not pending:
                self.stdout.write("audit schema: up to date")
            for migration in pending:
                self.stdout.write(f"audit schema: applying {migration.version} {migration.name}")
                client.execute(migration.sql)
                client.execute(
                    clickhouse_schema.RECORD_MIGRATION, [(migration.version, migration.name)]
                )
        except CLICKHOUSE_FAILURES as error:
            raise CommandError(f"ClickHouse: {type(error).__name__}: {error}") from error
        self.stdout.write(f"audit schema: at version {clickhouse_schema.MIGRATIONS[-1].version}")
