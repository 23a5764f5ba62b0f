"""Per-client allowed scopes and resources (OWASP ASVS 10.4.11, 9.2.4; RFC 8707).

Every client that exists when this runs keeps exactly what it could be granted before, so no
deployed relying party breaks on upgrade:

- allowed_scopes: the scopes of settings.SCOPES less those the rules of apps/tokens/scopes.py
  kept from it then (`admin` unless first-party, `offline_access` without the refresh_token
  grant), i.e. what TesseraScopes.get_available_scopes answered for it;
- allowed_resources: "*", any absolute URI as `resource`, as before.

An operator narrows both on the client's page or through the admin API. New clients get the
narrower defaults of client_create instead (scopes.default_allowed_scopes, no resource).

Expand-only (docs/operations.md, "Rolling upgrades"): both columns have a database default,
so the previous release's INSERTs still work. A client that release registers after this ran
gets "" (no scope, the default audience only: closed, not open) until an operator sets its
lists; the backfill below covers every client that existed when it ran."""

from typing import Any

from django.conf import settings
from django.db import migrations, models

ANY_RESOURCE = "*"  # apps.tokens.scopes.ANY_RESOURCE, frozen here


def _today(client: Any) -> str:
    grants = set(client.grant_types.split())
    scopes = [
        scope
        for scope in settings.SCOPES
        if not (scope == "admin" and not client.skip_authorization)
        and not (scope == "offline_access" and "refresh_token" not in grants)
    ]
    return " ".join(scopes)


def keep_what_existing_clients_had(apps: Any, schema_editor: Any) -> None:
    Client = apps.get_model("tokens", "Client")
    for client in Client.objects.only("pk", "grant_types", "skip_authorization").iterator():
        Client.objects.filter(pk=client.pk).update(
            allowed_scopes=_today(client), allowed_resources=ANY_RESOURCE
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0011_sender_constrained"),
    ]

    operations = [
        migrations.AddField(
            model_name="client",
            name="allowed_scopes",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AddField(
            model_name="client",
            name="allowed_resources",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.RunPython(keep_what_existing_clients_had, migrations.RunPython.noop),
    ]
