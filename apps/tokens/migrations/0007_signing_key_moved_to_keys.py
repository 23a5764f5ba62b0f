# SigningKey now belongs to apps.keys (keys.0001 took it over in state); the table
# tokens_signing_key and its rows stay where they are.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('keys', '0001_initial'),
        ('tokens', '0006_offline_grant_require_pkce'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='SigningKey')],
            database_operations=[],
        ),
    ]
