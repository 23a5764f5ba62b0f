#!/usr/bin/env python3
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from idp.cli import execute

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reads the environment once, here
    except ImproperlyConfigured as error:
        sys.exit(f"configuration error: {error}")
    # A missing or unmigrated database is explained in one paragraph, not a traceback.
    sys.exit(execute(sys.argv))
