from __future__ import annotations

from typing import Any

from clickhouse_driver import Client
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit import clickhouse_schema
from apps.core.clickhouse import CLICKHOUSE_FAILURES, get_clickhouse


class Command(BaseCommand):
    help = (
        "Create or upgrade the audit tables in ClickHouse (CLICKHOUSE_URL): applies the "
        "migrations of apps/audit/clickhouse_schema.py not yet recorded in "
        f"{clickhouse_schema.MIGRATIONS_TABLE}, in order. Running it again does nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--cluster",
            metavar="NAME",
            help=(
                "a cluster of the server's remote_servers: ReplicatedReplacingMergeTree tables "
                "on every shard and Distributed tables over them, ON CLUSTER NAME. Defaults to "
                "IDP_CLICKHOUSE_CLUSTER, which must name the same cluster (the shipper and the "
                "store read it)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.CLICKHOUSE_URL is None:
            raise CommandError("CLICKHOUSE_URL is not set: audit events stay in the database")
        configured = settings.CLICKHOUSE_CLUSTER or None
        cluster = options["cluster"] or configured
        if cluster != configured:
            raise CommandError(
                f"--cluster {cluster} but IDP_CLICKHOUSE_CLUSTER is "
                f"{configured or 'unset'}: the shipper and the audit store would not use the "
                f"tables made here; set IDP_CLICKHOUSE_CLUSTER={cluster} for every process"
            )
        client = get_clickhouse()
        try:
            migrations, create_record = self._schema(client, cluster)
            client.execute(create_record)
            if cluster:
                client.execute(clickhouse_schema.SYNC_MIGRATIONS_TABLE)
            applied = {version for (version,) in client.execute(clickhouse_schema.APPLIED_VERSIONS)}
            pending = [m for m in migrations if m.version not in applied]
            if not pending:
                self.stdout.write("audit schema: up to date")
            for migration in pending:
                self.stdout.write(f"audit schema: applying {migration.version} {migration.name}")
                for statement in migration.statements:
                    client.execute(statement)
                client.execute(
                    clickhouse_schema.RECORD_MIGRATION, [(migration.version, migration.name)]
                )
        except CLICKHOUSE_FAILURES as error:
            raise CommandError(f"ClickHouse: {type(error).__name__}: {error}") from error
        where = f" on cluster {cluster}" if cluster else ""
        self.stdout.write(f"audit schema: at version {migrations[-1].version}{where}")

    def _schema(
        self, client: Client, cluster: str | None
    ) -> tuple[tuple[clickhouse_schema.Migration, ...], str]:
        """The migrations and the record's table for one server or for `cluster`, once the
        cluster is known to the server and the tables already there are of the same kind."""
        events_engine = client.execute(
            clickhouse_schema.TABLE_ENGINE, {"table": clickhouse_schema.EVENTS_TABLE}
        )
        if cluster is None:
            if events_engine and events_engine[0][0] == "Distributed":
                raise CommandError(
                    f"{clickhouse_schema.EVENTS_TABLE} is a Distributed table (a cluster's "
                    "schema): set IDP_CLICKHOUSE_CLUSTER to its cluster"
                )
            return clickhouse_schema.MIGRATIONS, clickhouse_schema.CREATE_MIGRATIONS_TABLE
        known = [name for (name,) in client.execute(clickhouse_schema.CLUSTER_NAMES)]
        if cluster not in known:
            host, port = client.connection.hosts[0]
            raise CommandError(
                f"ClickHouse at {host}:{port} has no cluster "
                f"{cluster!r} in its remote_servers (system.clusters has: "
                f"{', '.join(known) or 'none'}); name one of those, or add {cluster!r} to every "
                "server's configuration"
            )
        if events_engine and events_engine[0][0] != "Distributed":
            raise CommandError(
                f"{clickhouse_schema.EVENTS_TABLE} is a {events_engine[0][0]} table of one "
                "server, not the Distributed table of a cluster: this database has the "
                "one-server schema (moving its events onto a cluster is an INSERT ... SELECT "
                "into the cluster's tables made in another database; README 'ClickHouse "
                "cluster')"
            )
        ((database,),) = client.execute(clickhouse_schema.CURRENT_DATABASE)
        return (
            clickhouse_schema.cluster_migrations(cluster, database),
            clickhouse_schema.cluster_migrations_table(cluster, database),
        )
