from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tokens', '0009_client_require_mfa'),
    ]

    operations = [
        migrations.AddField(
            model_name='client',
            name='require_par',
            field=models.BooleanField(default=False),
        ),
    ]
