"""Production settings plus one route: the bare reference view of benchmarks/bench_urls.py.

Everything else (middleware, database, cache, logging, OAuth) is idp.settings as read from the
environment, so the endpoints under test run exactly as they do in production.
"""

from idp.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
