"""The production WSGI application with the revocation check taken out of access-token
validation: the reference benchmarks.oidc_endpoints measures the check's cost against. Never
serve it: revoked tokens would be accepted."""

import importlib

from idp.wsgi import application  # sets Django up: apps.tokens can be imported after it

validation = importlib.import_module("apps.tokens.validation")
validation.CHECKS.remove(validation._check_revocation)

__all__ = ["application"]
