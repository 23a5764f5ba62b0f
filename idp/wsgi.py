import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

from django.conf import settings

if settings.TRACING:  # before Django loads the middleware: the tracing one goes first
    from idp import tracing

    tracing.instrument()
_django = get_wsgi_application()

from apps.core import journal  # noqa: E402 - needs Django set up
from apps.core.request_limits import ChunkedBodyLimit  # noqa: E402

# Each web worker opens its audit journal as it starts: its drain thread replays at once the
# journals of workers that died. A graceful stop drains it (atexit, apps/core/journal.py).
journal.start()

# Django reads no chunked body (it goes by Content-Length); this reads one, within the limit.
application = ChunkedBodyLimit(_django)
