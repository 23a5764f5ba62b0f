"""Production settings plus one route: the bare reference view of benchmarks/bench_urls.py.

Everything else (middleware, database, cache, logging, OAuth) is idp.settings as read from the
environment, so the endpoints under test run exactly as they do in production.

BENCH_ACCESS_TOKEN_ALG stands in for IDP_ACCESS_TOKEN_ALG, which idp.env.choice() refuses for
every value today (it lower-cases the value, then looks for it among "ES256", "RS256",
"EdDSA"); the setting it sets is the same one, settings.ACCESS_TOKEN_ALG.
"""

import os

from idp.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"

_alg = os.environ.get("BENCH_ACCESS_TOKEN_ALG")
if _alg:
    if _alg not in ("ES256", "RS256", "EdDSA"):
        raise ValueError(f"BENCH_ACCESS_TOKEN_ALG={_alg!r}: use ES256, RS256 or EdDSA")
    ACCESS_TOKEN_ALG = _alg
