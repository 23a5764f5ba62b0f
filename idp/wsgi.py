import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
_django = get_wsgi_application()

from apps.core.request_limits import ChunkedBodyLimit  # noqa: E402 - needs Django set up

# Django reads no chunked body (it goes by Content-Length); this reads one, within the limit.
application = ChunkedBodyLimit(_django)
