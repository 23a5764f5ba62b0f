"""gunicorn as Tessera ran it before granian (benchmarks/README.md, "Web servers"): the
configuration benchmarks/web_servers.py compares, `gunicorn -c benchmarks/gunicorn.conf.py
idp.wsgi:application`. Every value comes from idp.settings (the environment)."""

import os

from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

bind = f"{settings.BIND_HOST}:{settings.PORT}"
workers = settings.WEB_WORKERS
worker_class = "gthread"
threads = 4
graceful_timeout = 10
timeout = 30
keepalive = 5
# The request-context middleware writes the access log as JSON; gunicorn's own is off.
accesslog = None
logger_class = "idp.gunicorn_logger.AppWritesAccessLog"
logconfig_dict = settings.LOGGING
# Runtime control belongs to the process supervisor, not a socket in $HOME.
control_socket_disable = True
limit_request_line = 8190
limit_request_fields = 100


def post_worker_init(worker: object) -> None:
    """Open the worker's audit journal at start: its drain thread replays at once the journals
    of workers that died (apps/core/journal.py)."""
    from apps.core import journal

    journal.start()


def worker_exit(server: object, worker: object) -> None:
    """Graceful exit: move the worker's journaled events to the outbox and remove its file."""
    from apps.core import journal

    journal.shutdown()
