"""Which database a read that may lag goes to: the PostgreSQL read replica when
DATABASE_REPLICA_URL is set, else the primary.

Explicit, not a database router: a router would decide for every query of a model, and the
sign-in and token paths, and any read right after a write, must read the primary. So a
caller that can live with a replica's lag (a console page or admin API list, read-only, of
what operators browse) asks for it by name, `queryset.using(lagging_reads())`, and
everything else reads the primary as before. A streaming replica is usually milliseconds
behind; such a page may show data about a second old (docs/redis-ha.md, "Read replica").
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA = "replica"  # the DATABASES alias of DATABASE_REPLICA_URL


def lagging_reads() -> str:
    return REPLICA if REPLICA in settings.DATABASES else DEFAULT_DB_ALIAS
