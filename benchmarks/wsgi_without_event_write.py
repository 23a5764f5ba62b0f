"""The production WSGI application with the security event's INSERT taken out (emit() builds
the row and drops it): the reference benchmarks.oidc_endpoints measures the synchronous event
write against at the token endpoint. Never serve it: no security event would be recorded."""

import importlib

from idp.wsgi import application  # sets Django up: apps.core can be imported after it

outbox = importlib.import_module("apps.core.outbox")
outbox.write = lambda values: None

__all__ = ["application"]
