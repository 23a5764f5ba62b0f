# SigningKey moves here from apps.tokens. State only: the table keeps its name
# (tokens_signing_key), its rows and its constraint; tokens.0007 drops the model from the
# tokens app's state once this one holds it.

from django.db import migrations, models


def move_content_type(apps, schema_editor):
    """Permissions on signing keys follow the model (tokens.signingkey -> keys.signingkey)."""
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not content_type.objects.using(db).filter(app_label="keys", model="signingkey").exists():
        content_type.objects.using(db).filter(app_label="tokens", model="signingkey").update(
            app_label="keys"
        )


def move_content_type_back(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not content_type.objects.using(db).filter(app_label="tokens", model="signingkey").exists():
        content_type.objects.using(db).filter(app_label="keys", model="signingkey").update(
            app_label="tokens"
        )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('tokens', '0002_signing_key'),  # created the table this model keeps
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SigningKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kid', models.CharField(max_length=64, unique=True)),
                        ('alg', models.CharField(choices=[('RS256', 'RS256 (RSA PKCS#1 v1.5 with SHA-256, the OIDC default)'), ('ES256', 'ES256 (ECDSA P-256 with SHA-256)'), ('EdDSA', 'EdDSA (Ed25519)')], max_length=8)),
                        ('generation', models.PositiveIntegerField()),
                        ('public_jwk', models.JSONField()),
                        ('sealed_private_key', models.BinaryField()),
                        ('kek_id', models.CharField(max_length=8)),
                        ('created_at', models.DateTimeField()),
                        ('activates_at', models.DateTimeField()),
                        ('retired_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'tokens_signing_key',
                        'constraints': [models.UniqueConstraint(fields=('alg', 'generation'), name='tokens_signing_key_alg_generation_uniq')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
