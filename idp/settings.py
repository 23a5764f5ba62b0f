"""Tessera settings: the one module that reads the environment.

Every option has a default that runs the embedded IdP (SQLite + a bundled Redis under the data
dir) and a one-line comment; README.md has the same table. IDP_ENV=production turns on the
checks that refuse an unsafe deployment.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from apps.core.redis import SCHEMES as REDIS_SCHEMES
from apps.core.redis import RedisLocation, RedisURLError, kombu_broker, parse_redis_url
from apps.core.security_headers import MANAGED_HEADERS
from idp import env

# Lets generic Django classes be subscripted at runtime (UserAdmin[User]) for type checking.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Environment options (README "Configuration" lists the same) ---------------------------

# "development" (the embedded default) or "production" (refuses unsafe settings at startup).
IDP_ENV = env.choice("IDP_ENV", "development", ("development", "production"))
PRODUCTION = IDP_ENV == "production"
# Django debug pages; never on in production. Off by default everywhere.
DEBUG = env.boolean("IDP_DEBUG", False)
# Where the embedded default keeps its SQLite file, Redis socket, static files and secret key.
DATA_DIR = env.path("IDP_DATA_DIR", BASE_DIR / "var")
# Port the web server listens on; defaults to the issuer's port, else 8000.
_issuer_env = env.url("IDP_ISSUER", None, schemes=("http", "https"))
PORT = env.integer(
    "PORT",
    urlsplit(_issuer_env).port or 8000 if _issuer_env else 8000,
    minimum=1,
    maximum=65535,
)
# Address the web server binds; 0.0.0.0 in a container.
BIND_HOST = env.string("IDP_BIND_HOST", "127.0.0.1")
# Serve HTTPS with a self-signed certificate for localhost made into the data dir (development
# only; docs/tls.md). Read here: it makes the default issuer https, as does IDP_TLS_CERT_FILE.
TLS_DEV_CERT = env.boolean("IDP_TLS_DEV_CERT", False)
_default_scheme = "https" if TLS_DEV_CERT or env.optional_string("IDP_TLS_CERT_FILE") else "http"
# The issuer identifier (OIDC Discovery 1.0 §3, RFC 8414 §2): https, no query or fragment.
ISSUER = (_issuer_env or f"{_default_scheme}://127.0.0.1:{PORT}").rstrip("/")
# Host names this server answers to; defaults to the issuer's host plus loopback names.
ALLOWED_HOSTS = env.hosts(
    "IDP_ALLOWED_HOSTS", sorted({urlsplit(ISSUER).hostname or "", "127.0.0.1", "localhost"})
)
# Proxies (IPs or CIDRs) whose X-Forwarded-For / X-Forwarded-Proto headers are believed.
TRUSTED_PROXIES = env.networks("IDP_TRUSTED_PROXIES")
# Database; SQLite file under the data dir by default, PostgreSQL in production.
DATABASE_URL = env.url(
    "DATABASE_URL",
    f"sqlite:///{DATA_DIR / 'idp.sqlite3'}",
    schemes=("postgres", "postgresql", "sqlite"),
)
# An optional PostgreSQL read replica (hot standby): the console's and admin API's read-only
# lists read it (apps/core/replica.py), nothing in sign-in or tokens; unset = the primary.
DATABASE_REPLICA_URL = env.url("DATABASE_REPLICA_URL", None, schemes=("postgres", "postgresql"))
if DATABASE_REPLICA_URL and not str(DATABASE_URL).startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL.")
# Redis for hot state, rate limits and revocation: redis://, rediss://, unix://, a Sentinel set
# (redis+sentinel://h1,h2,h3/service) or a Cluster (redis+cluster://h1,h2,h3); unset = start
# the bundled Redis server (apps/core/redis.py, docs/redis-ha.md).
_redis_env = env.url("REDIS_URL", None, schemes=REDIS_SCHEMES)
EMBEDDED_REDIS = _redis_env is None
EMBEDDED_REDIS_SOCKET = DATA_DIR / "redis" / "redis.sock"
REDIS_URL: str = _redis_env or f"unix://{EMBEDDED_REDIS_SOCKET}?db=0"
# Celery broker; defaults to REDIS_URL (a Sentinel URL is translated for kombu; a Cluster's
# REDIS_URL needs this set to a single server or a Sentinel set: kombu has no Cluster transport).
_broker_env = env.url(
    "CELERY_BROKER_URL", None, schemes=("redis", "rediss", "redis+socket", "redis+sentinel")
)
# Audit analytics store (native protocol, e.g. clickhouse://user:pass@host:9000/db); unset =
# audit events stay in the database.
CLICKHOUSE_URL = env.url("CLICKHOUSE_URL", None, schemes=("clickhouse", "clickhouses"))
# The ClickHouse cluster (a remote_servers name) the audit tables span: audit_migrate makes
# ReplicatedReplacingMergeTree tables on every shard and Distributed tables over them (README
# "ClickHouse cluster"); unset = the tables of one server.
CLICKHOUSE_CLUSTER = env.optional_string("IDP_CLICKHOUSE_CLUSTER")
if CLICKHOUSE_CLUSTER and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", CLICKHOUSE_CLUSTER):
    raise ImproperlyConfigured(
        f"IDP_CLICKHOUSE_CLUSTER={CLICKHOUSE_CLUSTER!r}: a remote_servers cluster name is "
        "letters, digits, '_', '.' and '-'"
    )
# Seconds between runs of the audit shipper (beat), each moving the event outbox to ClickHouse.
AUDIT_SHIP_INTERVAL = env.integer("IDP_AUDIT_SHIP_INTERVAL", 5, minimum=1, maximum=3600)
# Events per ClickHouse INSERT, one database transaction each; a run ships until drained.
AUDIT_SHIP_BATCH = env.integer("IDP_AUDIT_SHIP_BATCH", 10000, minimum=1, maximum=1_000_000)
# A web or worker process that has written this many more events asks for a shipping run at
# once, without waiting for the next interval (a burst reaches ClickHouse sooner).
AUDIT_SHIP_THRESHOLD = env.integer("IDP_AUDIT_SHIP_THRESHOLD", 10000, minimum=1, maximum=1_000_000)
# Seconds the oldest unshipped event may wait before /readyz fails (with ClickHouse only).
AUDIT_BACKLOG_MAX_AGE = env.integer("IDP_AUDIT_BACKLOG_MAX_AGE", 300, minimum=1, maximum=86400)
# Events recorded outside a database transaction (a client_credentials token, a failed
# client authentication) are appended to a per-process journal file before the response and
# moved to the outbox within 50 ms (HashiCorp Vault's audit model; README "Audit durability");
# off = a synchronous INSERT per event, stronger against a whole-host crash and slower.
AUDIT_JOURNAL = env.boolean("IDP_AUDIT_JOURNAL", True)
# Where those journals live: a persistent local volume (flock, not NFS), kept across restarts.
AUDIT_JOURNAL_DIR = env.path("IDP_AUDIT_JOURNAL_DIR", DATA_DIR / "journal")
# Days audit events are kept: whole months older are dropped in ClickHouse (outbox rows without).
AUDIT_RETENTION_DAYS = env.integer("IDP_AUDIT_RETENTION_DAYS", 400, minimum=1, maximum=36500)
if CLICKHOUSE_URL and not str(DATABASE_URL).startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured(
        "CLICKHOUSE_URL needs a PostgreSQL DATABASE_URL: the audit shipper takes batches from "
        "the outbox with FOR UPDATE SKIP LOCKED, which SQLite does not have."
    )
# Accept http:// redirect URIs (RFC 8252 loopback apps, local development); off in production.
ALLOW_HTTP_REDIRECT_URIS = env.boolean("IDP_ALLOW_HTTP_REDIRECT_URIS", not PRODUCTION)
# Access-token lifetime in seconds (RFC 9068 JWTs; short-lived, DESIGN security stance).
ACCESS_TOKEN_LIFETIME = env.integer("IDP_ACCESS_TOKEN_LIFETIME", 900, minimum=60, maximum=86400)
# Refresh-token absolute lifetime in seconds; rotated on every use (RFC 9700 §4.14.2).
REFRESH_TOKEN_LIFETIME = env.integer(
    "IDP_REFRESH_TOKEN_LIFETIME", 7 * 86400, minimum=300, maximum=90 * 86400
)
# Offline access (OIDC Core §11, scope offline_access): seconds an offline grant's refresh
# chain lives at most, however often it is used; it outlives the login session it began in.
OFFLINE_ACCESS_LIFETIME = env.integer(
    "IDP_OFFLINE_ACCESS_LIFETIME", 30 * 86400, minimum=3600, maximum=365 * 86400
)
# Seconds an offline grant survives unused (no refresh); it then ends (RFC 9700 §4.14.2).
OFFLINE_ACCESS_IDLE_TIMEOUT = env.integer(
    "IDP_OFFLINE_ACCESS_IDLE_TIMEOUT", 14 * 86400, minimum=3600, maximum=365 * 86400
)
# Put the client's IP address in access tokens (`ip`). Off: it is personal data every
# resource server would log (GDPR Art. 5(1)(c) data minimisation).
ACCESS_TOKEN_IP_CLAIM = env.boolean("IDP_ACCESS_TOKEN_IP_CLAIM", False)
# ID-token lifetime in seconds (OIDC Core §2).
ID_TOKEN_LIFETIME = env.integer("IDP_ID_TOKEN_LIFETIME", 3600, minimum=60, maximum=86400)
# Seconds a login session lives at most before the person must sign in again.
LOGIN_SESSION_LIFETIME = env.integer(
    "IDP_LOGIN_SESSION_LIFETIME", 12 * 3600, minimum=300, maximum=30 * 86400
)
# Seconds a login session survives without activity (sliding; OWASP ASVS 3.3.2).
LOGIN_SESSION_IDLE_TIMEOUT = env.integer(
    "IDP_LOGIN_SESSION_IDLE_TIMEOUT", 2 * 3600, minimum=60, maximum=30 * 86400
)
# Live login sessions a user may hold at once (0: no limit) and what a login beyond it does:
# end the oldest (evict_oldest) or be refused (refuse). OWASP ASVS 3.3.4 / 3.7.
LOGIN_SESSION_LIMIT = env.integer("IDP_LOGIN_SESSION_LIMIT", 10, minimum=0, maximum=1000)
LOGIN_SESSION_LIMIT_POLICY = env.choice(
    "IDP_LOGIN_SESSION_LIMIT_POLICY", "evict_oldest", ("evict_oldest", "refuse")
)
# A session used from another network than its login's: a change inside the same /24 (IPv4)
# or /64 (IPv6) is ordinary; anything else is flagged (an event), or also ends the session
# (reject), or is ignored (allow).
LOGIN_SESSION_IP_CHANGE = env.choice(
    "IDP_LOGIN_SESSION_IP_CHANGE", "flag", ("allow", "flag", "reject")
)
LOGIN_SESSION_IPV4_PREFIX = env.integer("IDP_LOGIN_SESSION_IPV4_PREFIX", 24, minimum=0, maximum=32)
LOGIN_SESSION_IPV6_PREFIX = env.integer("IDP_LOGIN_SESSION_IPV6_PREFIX", 64, minimum=0, maximum=128)
# A MaxMind GeoIP2/GeoLite2 City or Country database (.mmdb): login sessions record where a
# login came from (country, city) in their context. Unset: no location.
GEOIP_DATABASE = env.existing_file("IDP_GEOIP_DATABASE")
# A MaxMind GeoLite2/GeoIP2 ASN database (.mmdb): threat scoring knows the network operator
# (autonomous system) of a sign-in (new_asn). Unset: asn is 0, new_asn never holds.
GEOIP_ASN_DATABASE = env.existing_file("IDP_GEOIP_ASN_DATABASE")
# Threat scoring (docs/threat.md). IP reputation lists: "name=path,name=path", each a file of
# CIDR networks, one a line (# comments), read once per process; unset: no lists.
THREAT_IP_LISTS = env.string("IDP_THREAT_IP_LISTS", "")
# Impossible travel: the speed (km/h) beyond which a trip between two sign-ins is impossible.
THREAT_TRAVEL_KMH = env.integer("IDP_THREAT_TRAVEL_KMH", 1000, minimum=100, maximum=100_000)
# Impossible travel: km forgiven for VPN exits and city-level GeoIP inaccuracy.
THREAT_TRAVEL_TOLERANCE_KM = env.integer(
    "IDP_THREAT_TRAVEL_TOLERANCE_KM", 300, minimum=0, maximum=20_000
)
# Default `aud` of access tokens (RFC 9068 §3); a client may ask for others (RFC 8707).
ACCESS_TOKEN_AUDIENCE = env.string("IDP_ACCESS_TOKEN_AUDIENCE", ISSUER)
# Oldest access-token format version the validators accept (raise to retire old tokens).
ACCESS_TOKEN_MIN_VERSION = env.integer("IDP_ACCESS_TOKEN_MIN_VERSION", 1, minimum=1, maximum=1000)
# Algorithm of access tokens (RFC 9068); ID tokens default to RS256, the OIDC default.
ACCESS_TOKEN_ALG = env.choice("IDP_ACCESS_TOKEN_ALG", "ES256", ("ES256", "RS256", "EdDSA"))
# Largest signed access token in bytes. Beyond it the token leaves out its authorization
# detail (workspaces, groups, perms, then orgs), names what it left out in OIDC Core §5.6.2
# `_claim_names`/`_claim_sources` (userinfo returns it) and says `authz_truncated: true`
# (apps/tokens/claims.py). At most 8192: the validation service refuses larger tokens and
# common servers cap a request header near 8 KB (nginx large_client_header_buffers 8k).
ACCESS_TOKEN_MAX_BYTES = env.integer("IDP_ACCESS_TOKEN_MAX_BYTES", 8192, minimum=2048, maximum=8192)
# Removing someone from an organization also revokes their live access tokens (revocation
# list, by jti), so it holds within a second, not at token expiry; their refresh tokens stay
# and give tokens without the organization. Off: access lasts until the tokens expire.
ACCOUNTS_REVOKE_ON_REMOVAL = env.boolean("IDP_REVOKE_ON_MEMBERSHIP_REMOVAL", True)
# Days a signing key signs before the next one takes over (automatic rotation).
KEY_ROTATION_DAYS = env.integer("IDP_KEY_ROTATION_DAYS", 30, minimum=1, maximum=365)
# Seconds JWKS responses may be cached; a new key is published at least this long (and a
# day at least) before it signs anything, so no relying party meets an unknown kid.
JWKS_MAX_AGE = env.integer("IDP_JWKS_MAX_AGE", 600, minimum=0, maximum=86400)
# Seconds a pushed authorization request's request_uri lives (RFC 9126 §2.2; at most 90).
PAR_LIFETIME = env.integer("IDP_PAR_LIFETIME", 60, minimum=5, maximum=90)
# Every authorization request must be pushed (RFC 9126 §5, published in discovery); a client's
# require_par asks it of that client alone.
REQUIRE_PAR = env.boolean("IDP_REQUIRE_PAR", False)
# Seconds before the first retry of a Back-Channel Logout delivery; each next one doubles.
BACKCHANNEL_RETRY_BASE_SECONDS = env.integer(
    "IDP_BACKCHANNEL_RETRY_BASE_SECONDS", 2, minimum=0, maximum=3600
)
# AES-256 key-encryption key (base64url, 32 bytes) sealing signing keys at rest; development
# generates one into the data dir, production requires it. Old keys, comma-separated, in
# IDP_KEY_ENCRYPTION_KEYS_OLD still decrypt while keys are re-sealed.
_kek_env = env.optional_string("IDP_KEY_ENCRYPTION_KEY")
_old_keks_env = env.optional_string("IDP_KEY_ENCRYPTION_KEYS_OLD") or ""
# Accept tokens while the revocation list is unreachable (default: refuse them, fail closed).
REVOCATION_FAIL_OPEN = env.boolean("IDP_REVOCATION_FAIL_OPEN", False)
# Log level of the JSON log lines on stdout.
LOG_LEVEL = env.choice(
    "IDP_LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")
).upper()
# Web server (granian, idp/web.py) worker processes.
WEB_WORKERS = env.integer("IDP_WEB_WORKERS", 2, minimum=1, maximum=64)
# Threads per web worker that run Django (granian --blocking-threads). A client sending its
# body slowly holds one of them while it trickles (a WSGI read blocks), so this is the number
# of such clients one worker outlasts; idle threads cost memory only.
WEB_THREADS = env.integer("IDP_WEB_THREADS", 32, minimum=1, maximum=512)


# --- TLS (tls; docs/tls.md) ----------------------------------------------------------------
# TLS terminated by Tessera itself: a PEM certificate chain (leaf first) and its unencrypted
# PEM key. Unset: plain HTTP, for a proxy in front that terminates TLS. Kept as given, not
# resolved: a changed file, or a symlink turned to a new file (certbot), is reloaded.
def _tls_file(name: str) -> Path | None:
    return env.existing_file(name, resolve=False)


TLS_CERT_FILE = _tls_file("IDP_TLS_CERT_FILE")
TLS_KEY_FILE = _tls_file("IDP_TLS_KEY_FILE")
if (TLS_CERT_FILE is None) != (TLS_KEY_FILE is None):
    raise ImproperlyConfigured("IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE go together: set both")
if TLS_DEV_CERT and PRODUCTION:
    raise ImproperlyConfigured("IDP_TLS_DEV_CERT is for development: production needs a real pair")
if TLS_DEV_CERT and TLS_CERT_FILE is None:
    from idp.tls import development_pair

    TLS_CERT_FILE, TLS_KEY_FILE = development_pair(DATA_DIR / "tls")
# Lowest TLS version accepted: 1.3 (RFC 8446) by default; "1.2" lets older clients in, with
# ECDHE key exchange and AEAD ciphers only (RFC 9325 §4.2, BCP 195).
TLS_MIN_VERSION = env.choice("IDP_TLS_MIN_VERSION", "1.3", ("1.2", "1.3"))
# Key-exchange groups, in order of preference, of the listeners that use OpenSSL (the mutual
# TLS listener). granian's rustls has its own fixed list (X25519, P-256, P-384; docs/tls.md).
TLS_CURVES = env.string("IDP_TLS_CURVES", "X25519,P-256,P-384")
_curves = [curve.strip() for curve in TLS_CURVES.split(",")]
if any(curve not in ("X25519", "P-256", "P-384") for curve in _curves):
    raise ImproperlyConfigured(
        f"IDP_TLS_CURVES={TLS_CURVES!r} is not valid: expected a comma-separated list of "
        "X25519, P-256, P-384."
    )
TLS_CURVES = ":".join(_curves)
# Port of Tessera's own mutual-TLS listener (idp/mtls.py, RFC 8705): it asks for a client
# certificate and hands it to Django. Unset or 0: none (or a proxy forwards the certificate).
MTLS_PORT = env.integer("IDP_MTLS_PORT", 0, minimum=0, maximum=65535) or None
if MTLS_PORT is not None and TLS_CERT_FILE is None:
    raise ImproperlyConfigured("IDP_MTLS_PORT needs IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE")
# Address the mutual-TLS listener binds.
MTLS_BIND = env.string("IDP_MTLS_BIND", BIND_HOST)


def _bracketed(host: str) -> str:  # an IPv6 literal in a URL (RFC 3986 §3.2.2)
    return f"[{host}]" if ":" in host else host


# The mutual-TLS origin published as RFC 8705 §5 mtls_endpoint_aliases; defaults to the
# issuer's host on IDP_MTLS_PORT. "" when there is none.
MTLS_BASE_URL = (
    env.url("IDP_MTLS_BASE_URL", None, schemes=("https",))
    or (f"https://{_bracketed(urlsplit(ISSUER).hostname or '')}:{MTLS_PORT}" if MTLS_PORT else "")
).rstrip("/")
if MTLS_BASE_URL and (urlsplit(MTLS_BASE_URL).hostname or "") not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(urlsplit(MTLS_BASE_URL).hostname or "")

# --- Requests and health -----------------------------------------------------------------
# Largest request body accepted, in bytes, whatever its content type or framing (OWASP ASVS
# 4.0 V13.1.3 / V12.1.1: size limits on requests); above it the answer is 413.
MAX_REQUEST_BODY_BYTES = env.integer(
    "IDP_MAX_REQUEST_BODY_BYTES", 1_048_576, minimum=4096, maximum=1_073_741_824
)
# Seconds after which a missing worker heartbeat makes /readyz fail.
WORKER_HEARTBEAT_MAX_AGE = env.integer("IDP_WORKER_HEARTBEAT_MAX_AGE", 60, minimum=5, maximum=3600)
# Seconds each /readyz dependency check may take before it counts as down.
HEALTH_CHECK_TIMEOUT = env.integer("IDP_HEALTH_CHECK_TIMEOUT", 2, minimum=1, maximum=30)

# --- Metrics (apps/core/metrics.py; README "Metrics") -------------------------------------
# The file holding the bearer token Prometheus sends to /metrics (32+ characters; re-read at
# each scrape, so it rotates without a restart). Unset: /metrics answers 404.
METRICS_TOKEN_FILE = env.existing_file("IDP_METRICS_TOKEN_FILE")
if METRICS_TOKEN_FILE is not None and len(METRICS_TOKEN_FILE.read_text().strip()) < 32:
    raise ImproperlyConfigured("IDP_METRICS_TOKEN_FILE must hold a token of 32+ characters")
# Counters of the server processes (prometheus-client's multi-process files), one folder per
# server (<role>-<pid>: web, mtls, worker, beat), emptied at its start; /metrics adds them up.
METRICS_DIR = DATA_DIR / "run" / "metrics"
# OpenTelemetry traces of web requests (idp/tracing.py), exported over OTLP as the standard
# OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT ...); each span has the request id.
TRACING = env.boolean("IDP_TRACING", False)

# --- Rate limits and lockout (apps/ratelimit; README "Rate limits and lockout") ----------
# Each rule is "LIMIT/PERIOD" plus optional burst=N (requests accepted at once, default
# LIMIT), backoff=none|linear|exponential with base=SECONDS (first penalty, default
# PERIOD/LIMIT), multiplier=X (default 2) and cap=SECONDS (default 3600): the penalty grows
# with a violation count that forgets one violation per PERIOD. "off" disables a rule.
# Algorithm: GCRA in one Redis Lua script, every rule of a request in one round trip.
RATELIMIT_ENABLED = env.boolean("IDP_RATELIMIT_ENABLED", True)
# Client networks (CIDRs, IPv4/IPv6) that skip every rate limit (failed-attempt lockout
# still applies), and networks refused outright with 403.
RATELIMIT_ALLOW = env.networks("IDP_RATELIMIT_ALLOW")
RATELIMIT_DENY = env.networks("IDP_RATELIMIT_DENY")
# Client IPs are keyed by address for IPv4 and by this prefix for IPv6 (one subscriber's /64).
RATELIMIT_IPV6_PREFIX = env.integer("IDP_RATELIMIT_IPV6_PREFIX", 64, minimum=32, maximum=128)
RATELIMIT_RULES: dict[str, dict[str, object] | None] = {
    # Sign-in form posts (/login, /admin/login/) per client IP: 30 a minute, 10 at once.
    "login.ip": env.rate("IDP_RATELIMIT_LOGIN_IP", "30/1m burst=10 backoff=exponential"),
    # Sign-in attempts per identifier typed (normalized email, existing or not), from
    # browsers that never signed in to it (a known browser is spared it). No backoff: anyone
    # can spend an address's budget, so it must not grow into a lockout of its owner
    # (Keycloak GHSA-cq42-vhv7-xr7p); the failed-attempt lockout below guards passwords.
    "login.account": env.rate("IDP_RATELIMIT_LOGIN_ACCOUNT", "20/1m burst=10"),
    # All sign-in posts together (load shedding).
    "login.endpoint": env.rate("IDP_RATELIMIT_LOGIN_ENDPOINT", "300/1s"),
    # /oauth/authorize (and its consent form) per client IP.
    "authorize.ip": env.rate("IDP_RATELIMIT_AUTHORIZE_IP", "120/1m burst=60"),
    "authorize.endpoint": env.rate("IDP_RATELIMIT_AUTHORIZE_ENDPOINT", "1000/1s"),
    # /oauth/token per client IP, per client id, and all together.
    "token.ip": env.rate("IDP_RATELIMIT_TOKEN_IP", "600/1m burst=120 backoff=linear"),
    "token.client": env.rate("IDP_RATELIMIT_TOKEN_CLIENT", "3000/1m burst=600"),
    "token.endpoint": env.rate("IDP_RATELIMIT_TOKEN_ENDPOINT", "3000/1s"),
    # /oauth/par (RFC 9126 pushed authorization requests) per client IP, client id, all.
    "par.ip": env.rate("IDP_RATELIMIT_PAR_IP", "600/1m burst=120 backoff=linear"),
    "par.client": env.rate("IDP_RATELIMIT_PAR_CLIENT", "3000/1m burst=600"),
    "par.endpoint": env.rate("IDP_RATELIMIT_PAR_ENDPOINT", "3000/1s"),
    # /oauth/introspect (RFC 7662) per client IP and per client id.
    "introspect.ip": env.rate("IDP_RATELIMIT_INTROSPECT_IP", "1200/1m burst=300"),
    "introspect.client": env.rate("IDP_RATELIMIT_INTROSPECT_CLIENT", "6000/1m burst=1000"),
    # /oauth/revoke (RFC 7009) per client IP and per client id.
    "revoke.ip": env.rate("IDP_RATELIMIT_REVOKE_IP", "300/1m burst=60"),
    "revoke.client": env.rate("IDP_RATELIMIT_REVOKE_CLIENT", "600/1m burst=120"),
    # /oauth/userinfo per client IP.
    "userinfo.ip": env.rate("IDP_RATELIMIT_USERINFO_IP", "1200/1m burst=300"),
    # The admin API (/api/v1/) per client IP.
    "api.ip": env.rate("IDP_RATELIMIT_API_IP", "300/1m burst=100"),
    # CSP violation reports (/csp-report) per client IP: a page breaking its policy sends a
    # few per view; more is someone filling the audit log.
    "csp_report.ip": env.rate("IDP_RATELIMIT_CSP_REPORT_IP", "60/1m burst=30"),
    # E-mail verification and password reset (apps/signin/recovery.py). "Send a new
    # verification link" per client IP and per account; "forgot password" per client IP and
    # per address typed (existing or not: the refusal tells nothing about accounts); the
    # links' confirm and new-password forms per client IP (OWASP Forgot Password Cheat Sheet:
    # rate limit; ASVS 4.0.3 2.2.1 anti-automation).
    "verify.ip": env.rate("IDP_RATELIMIT_VERIFY_IP", "20/1h burst=5"),
    "verify.account": env.rate("IDP_RATELIMIT_VERIFY_ACCOUNT", "5/1h burst=3"),
    "forgot.ip": env.rate("IDP_RATELIMIT_FORGOT_IP", "20/1h burst=5"),
    "forgot.account": env.rate("IDP_RATELIMIT_FORGOT_ACCOUNT", "5/1h burst=3"),
    "link.ip": env.rate("IDP_RATELIMIT_LINK_IP", "60/1h burst=20"),
    # Every rate-limited request together (load shedding for the whole server).
    "global": env.rate("IDP_RATELIMIT_GLOBAL", "5000/1s"),
    # The account page's e-mail change (/account/email: a link mailed to an address the
    # person types) per client IP and per account: bounds the mail anyone with an account
    # can send to someone else's mailbox.
    "account_email.ip": env.rate("IDP_RATELIMIT_ACCOUNT_EMAIL_IP", "20/1h burst=5"),
    "account_email.account": env.rate("IDP_RATELIMIT_ACCOUNT_EMAIL_ACCOUNT", "5/1h burst=3"),
    # Passwordless sign-in (/login/passkey and its options) per client IP: the sign-in page
    # asks for options once per view (the browser's passkey autofill), so more than login.ip.
    "passkey.ip": env.rate("IDP_RATELIMIT_PASSKEY_IP", "60/1m burst=20 backoff=exponential"),
    "passkey.endpoint": env.rate("IDP_RATELIMIT_PASSKEY_ENDPOINT", "300/1s"),
    # The security page's "confirm it is you" (password, code or passkey) per client IP.
    "reauth.ip": env.rate("IDP_RATELIMIT_REAUTH_IP", "20/1m burst=10 backoff=exponential"),
}
# Failed-attempt lockout (Keycloak's brute-force model), for passwords per identifier and
# client secrets per client id, existing or not; an attempt is reserved before the secret is
# checked. The (identifier, IP) counter locks after RATELIMIT_LOCKOUT_IP_THRESHOLD failures,
# the identifier's own after RATELIMIT_LOCKOUT_THRESHOLD (kept high: a lockout must not become
# a denial of service, NIST SP 800-63B §5.2.2 allows at most 100).
LOCKOUT_IP_THRESHOLD = env.integer("IDP_LOCKOUT_IP_THRESHOLD", 5, minimum=1, maximum=1000)
LOCKOUT_THRESHOLD = env.integer("IDP_LOCKOUT_THRESHOLD", 50, minimum=1, maximum=100)
# Seconds added to the wait at each lockout (first lockout waits this long), and the cap.
LOCKOUT_WAIT_INCREMENT = env.integer("IDP_LOCKOUT_WAIT_INCREMENT", 60, minimum=1, maximum=86400)
LOCKOUT_MAX_WAIT = env.integer("IDP_LOCKOUT_MAX_WAIT", 900, minimum=1, maximum=30 * 86400)
# Seconds without a failure after which the counters start again from zero.
LOCKOUT_FAILURE_RESET = env.integer(
    "IDP_LOCKOUT_FAILURE_RESET", 12 * 3600, minimum=60, maximum=30 * 86400
)
# Lockouts after which the lock is permanent until an operator unlocks (0: never).
LOCKOUT_PERMANENT_AFTER = env.integer("IDP_LOCKOUT_PERMANENT_AFTER", 0, minimum=0, maximum=1000)


def _secret_key() -> str:
    """IDP_SECRET_KEY, or in development one generated once and kept in the data dir."""
    configured = env.optional_string("IDP_SECRET_KEY")
    if configured is not None:
        if len(configured) < 50:
            raise ImproperlyConfigured(
                "IDP_SECRET_KEY is too short: use at least 50 random characters "
                '(python3 -c "import secrets; print(secrets.token_urlsafe(64))").'
            )
        return configured
    if PRODUCTION:
        raise ImproperlyConfigured(
            "IDP_SECRET_KEY is not set: production needs a secret key of at least 50 random "
            'characters (python3 -c "import secrets; print(secrets.token_urlsafe(64))").'
        )
    return _data_file("secret_key", lambda: secrets.token_urlsafe(64))


def _data_file(name: str, generate: Callable[[], str]) -> str:
    """A development secret generated once into the data dir, readable by its owner only."""
    path = DATA_DIR / name
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x", encoding="ascii") as handle:
                path.chmod(0o600)
                handle.write(generate())
        except FileExistsError:
            pass  # another process of the same tree created it first
    return path.read_text(encoding="ascii").strip()


def _secret_key_fallbacks(current: str) -> list[str]:
    """IDP_SECRET_KEY_FALLBACKS: old keys, separated by commas or whitespace. Never echoed."""
    name = "IDP_SECRET_KEY_FALLBACKS"
    raw = env.optional_string(name) or ""
    keys = [key for key in re.split(r"[,\s]+", raw) if key]
    for position, key in enumerate(keys, start=1):
        if len(key) < 50:
            raise ImproperlyConfigured(
                f"{name}: key {position} of {len(keys)} is too short: each old key is a former "
                "IDP_SECRET_KEY of at least 50 characters, separated by commas or spaces."
            )
        if key == current:
            raise ImproperlyConfigured(
                f"{name}: key {position} of {len(keys)} is IDP_SECRET_KEY itself: list only the "
                "keys it replaced."
            )
    if len(set(keys)) != len(keys):
        raise ImproperlyConfigured(f"{name} lists one key twice.")
    return keys


SECRET_KEY = _secret_key()
# Former IDP_SECRET_KEYs (comma/space-separated): still verify, never sign (docs/operations.md).
SECRET_KEY_FALLBACKS = _secret_key_fallbacks(SECRET_KEY)


def _key_encryption_key() -> bytes:
    raw = _kek_env
    if raw is None:
        if PRODUCTION:
            raise ImproperlyConfigured(
                "IDP_KEY_ENCRYPTION_KEY is not set: production needs a base64url AES-256 key "
                '(python3 -c "import secrets,base64; '
                'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())").'
            )
        raw = _data_file("key_encryption_key", lambda: _b64(secrets.token_bytes(32)))
    return _aes_key("IDP_KEY_ENCRYPTION_KEY", raw)


def _aes_key(name: str, raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} is not valid: expected 32 bytes, base64url-encoded.")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


KEY_ENCRYPTION_KEY = _key_encryption_key()
KEY_ENCRYPTION_KEYS_OLD = tuple(
    _aes_key("IDP_KEY_ENCRYPTION_KEYS_OLD", raw.strip())
    for raw in _old_keks_env.split(",")
    if raw.strip()
)

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("IDP_DEBUG must be off when IDP_ENV=production.")
    if not ISSUER.startswith("https://"):
        raise ImproperlyConfigured(
            f"IDP_ISSUER={ISSUER!r} must be an https:// URL when IDP_ENV=production "
            "(OIDC Discovery 1.0 §3)."
        )
_issuer_parts = urlsplit(ISSUER)
if _issuer_parts.query or _issuer_parts.fragment:
    raise ImproperlyConfigured(
        f"IDP_ISSUER={ISSUER!r} must not have a query or fragment (OIDC Discovery 1.0 §3)."
    )


def _redis_location(name: str, url: str) -> RedisLocation:
    try:
        return parse_redis_url(url)
    except RedisURLError as error:  # the message never repeats the URL: it may hold a password
        raise ImproperlyConfigured(f"{name} is not a Redis URL Tessera can use: {error}.") from None


def _celery_broker(name: str, url: str) -> tuple[str, dict[str, object]]:
    if url.startswith("redis+socket://"):
        return url, {}
    _redis_location(name, url)
    try:
        return kombu_broker(url)
    except RedisURLError as error:
        raise ImproperlyConfigured(f"{name}: {error}.") from None


REDIS_LOCATION = _redis_location("REDIS_URL", REDIS_URL)


# --- Django ------------------------------------------------------------------------------

INSTALLED_APPS = [
    # Django's admin, open to administrators only (apps/console/admin_site.py).
    "apps.console.admin_config.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "csp",  # django-csp: its system checks of CONTENT_SECURITY_POLICY
    "oauth2_provider",
    "apps.core",
    "apps.keys",
    "apps.accounts",
    "apps.ratelimit",
    "apps.sessions",
    "apps.mfa",
    "apps.signin",
    "apps.tokens",
    "apps.threat",
    "apps.federation",
    "apps.audit",
    "apps.console",
]

# Passwords are checked by ModelBackend (through the sign-in pipeline); the second backend
# gives administrators (StaffRole) every model permission the Django admin asks for.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "apps.console.admin_site.AdministratorPermissions",
]

MIDDLEWARE = [
    "apps.core.request_context.RequestContextMiddleware",
    # Security headers and CSP on every response, refusals of the middleware below included.
    "apps.core.security_headers.SecurityHeadersMiddleware",
    # /metrics for the scraper with the token, before host and HTTPS checks (metrics_view.py).
    "apps.core.metrics_view.MetricsEndpointMiddleware",
    # 503 + Retry-After when the journal or the database is down for now (core.views).
    "apps.core.middleware.UnavailableMiddleware",
    "apps.core.request_limits.RequestLimitsMiddleware",
    "apps.core.middleware.RejectNulMiddleware",
    # Rate limits by path before any session or database work (apps/ratelimit/middleware.py).
    "apps.ratelimit.middleware.RateLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # 405 + Allow for a method the view does not take, before the CSRF check (core/methods.py).
    "apps.core.methods.MethodNotAllowedMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.sessions.middleware.LoginSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "idp.urls"
WSGI_APPLICATION = "idp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=600))
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web server, worker and beat processes read while one writes;
        # IMMEDIATE takes the write lock at BEGIN so two writers queue instead of deadlocking.
        # Connections persist (conn_max_age above), as on PostgreSQL: opening one and running
        # its PRAGMAs per request was a connection per request on the hot path (issue 11).
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    else:
        config.setdefault("OPTIONS", {})["connect_timeout"] = HEALTH_CHECK_TIMEOUT
    if config["ENGINE"] == "django.db.backends.postgresql":
        # The same backend, with a health check that asks the server only when the socket
        # says something happened (apps/core/postgresql/base.py).
        config["ENGINE"] = "apps.core.postgresql"
    return config


assert DATABASE_URL is not None
DATABASES = {"default": _database(DATABASE_URL)}
if DATABASE_REPLICA_URL:
    # A test run uses the primary's test database for it: a standby cannot be created on.
    DATABASES["replica"] = {**_database(DATABASE_REPLICA_URL), "TEST": {"MIRROR": "default"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        # A list, so that django-redis does not split a Sentinel or Cluster host list.
        "LOCATION": [REDIS_URL],
        # The process's one client (apps/core/redis.py), timeouts included.
        "OPTIONS": {"CONNECTION_FACTORY": "apps.core.redis.CacheConnectionFactory"},
    }
}

AUTH_USER_MODEL = "accounts.User"

# Where a person's data lives, for their GDPR export and erasure (apps/core/privacy.py): the
# export lists these apps' sections in this order; erasure runs them in reverse.
PERSONAL_DATA_HOLDERS = [
    "apps.accounts.privacy.AccountData",
    "apps.sessions.privacy.SessionData",
    "apps.tokens.privacy.TokenData",
    "apps.mfa.privacy.MfaData",
    "apps.threat.privacy.ThreatData",
    "apps.federation.privacy.FederationData",
]
# Rows holding values sealed under the key-encryption key, by kind, that `manage.py reseal`
# moves to the current key (apps/core/reseal.py port); PAR payloads expire instead.
SEALED_ROWS = {
    "signing_keys": "apps.keys.keys.SealedSigningKeys",
    "totp": "apps.mfa.totp.SealedTotpSecrets",
    "federation_providers": "apps.federation.providers.SealedProviderSecrets",
}
# Readiness checks of higher apps that /readyz runs (apps/core/health.py), by dotted path;
# `gates`: down makes /readyz 503 (this pod cannot serve), else only `degraded`.
READINESS_CHECKS = {
    "ratelimit": {"check": "apps.ratelimit.health.ratelimit_state", "gates": False},
    "signing_keys": {"check": "apps.keys.health.signing_keys_state", "gates": True},
}
# Revokes a person's live access tokens for accounts (apps/core/revocation.py port).
USER_ACCESS_TOKEN_REVOKER = "apps.tokens.services.user_access_tokens_revoke"
# Ends a person's offline grants for threat responses (apps/core/revocation.py port).
USER_OFFLINE_GRANTS_REVOKER = "apps.tokens.services.offline_grants_revoke_all"
# The person's own account page (apps/signin/account.py) reaches tokens and audit through
# these ports (apps/core/people.py): their applications (consents, offline grants) and their
# recent security events.
PERSON_APPLICATIONS = "apps.tokens.person.PersonApplications"
PERSON_SECURITY_HISTORY = "apps.audit.selectors.person_security_history"
# The security-notice mail (apps/core/notices.py port): mfa's factor notices go through it.
SECURITY_NOTICE = "apps.signin.notices.security_notice"
# Sign-in and token code reach threat scoring through this port (apps/core/risk.py).
RISK_ASSESSOR = "apps.threat.port.ThreatAssessor"
# OWASP Password Storage Cheat Sheet: argon2id first; older hashes upgrade at login.
PASSWORD_HASHERS = [
    "apps.accounts.hashers.OwaspArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "apps.tokens.hashers.ClientSecretHasher",  # client secrets only (CLIENT_SECRET_HASHER)
]
# --- Password policy (apps/accounts/passwords.py; NIST SP 800-63B §5.1.1.2) -------------
# Length in characters (Unicode code points): at least 12 by default (800-63B: 8 at least,
# the floor here), at most 128 by default (800-63B: at least 64 must be accepted; the sign-in
# form reads up to 1024). No composition rules. Refused when on Django's list of common
# passwords, too similar to the person's e-mail address or name, made of a context word and
# little else, or on the operator's list.
PASSWORD_MIN_LENGTH = env.integer("IDP_PASSWORD_MIN_LENGTH", 12, minimum=8, maximum=64)
PASSWORD_MAX_LENGTH = env.integer("IDP_PASSWORD_MAX_LENGTH", 128, minimum=64, maximum=1024)
# A file of breached or forbidden passwords, one a line, UTF-8, optionally gzip (e.g. a Have
# I Been Pwned extract); read once per process, 8 bytes of memory per entry. Unset: none.
PASSWORD_BLOCKLIST_FILE = env.existing_file("IDP_PASSWORD_BLOCKLIST_FILE")
# ASVS 5.0 6.1.2 / 6.2.11: context-specific words a password may not be made of, besides the
# product's name, IDP_SITE_NAME and the issuer's host name (apps/accounts/passwords.py
# ContextWordsValidator): the organization's names, its products, the city. Comma-separated.
PASSWORD_CONTEXT_WORDS = env.words("IDP_PASSWORD_CONTEXT_WORDS")
AUTH_PASSWORD_VALIDATORS: list[dict[str, Any]] = [
    {
        "NAME": "apps.accounts.passwords.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {
        "NAME": "apps.accounts.passwords.MaximumLengthValidator",
        "OPTIONS": {"max_length": PASSWORD_MAX_LENGTH},
    },
    {"NAME": "apps.accounts.passwords.UserAttributeSimilarityValidator"},
    {"NAME": "apps.accounts.passwords.CommonPasswordValidator"},
    {"NAME": "apps.accounts.passwords.ContextWordsValidator"},
]
if PASSWORD_BLOCKLIST_FILE is not None:
    AUTH_PASSWORD_VALIDATORS.append(
        {
            "NAME": "apps.accounts.passwords.BlocklistValidator",
            "OPTIONS": {"path": PASSWORD_BLOCKLIST_FILE},
        }
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic puts the static files and whitenoise serves them from; outside the data
# dir in the container image, which collects them at build and mounts the data dir as a volume.
STATIC_ROOT = env.path("IDP_STATIC_ROOT", DATA_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "signin:login"

# --- Outgoing e-mail (apps/core/mail.py; sent by the Celery worker) -----------------------

# The name messages and pages sign with.
SITE_NAME = env.string("IDP_SITE_NAME", "Tessera")
# The From: of every message (RFC 5322 §3.6.2); a deployment sets its own domain's address.
MAIL_FROM = env.string("IDP_MAIL_FROM", f"{SITE_NAME} <no-reply@{urlsplit(ISSUER).hostname}>")
# IDP_SMTP_URL: smtp://[user:password@]host[:port] sends through STARTTLS, required (RFC 3207;
# port 587 by default); smtps://… uses implicit TLS (RFC 8314 §3.3; port 465). The server's
# certificate and host name are always verified; user and password are percent-decoded.
# Unset (development only; production refuses to start): each message is written as a file
# under the data dir (MAIL_DIR), and `make run` prints where. There is no unencrypted SMTP:
# a relay without TLS is not an option here.
_SMTP_URL_FORM = (
    "IDP_SMTP_URL is not valid: expected smtp://[user:password@]host[:port] or "
    "smtps://[user:password@]host[:port], user and password percent-encoded."
)  # the value is never repeated in an error: it may hold the password
try:
    SMTP_URL = env.url("IDP_SMTP_URL", None, schemes=("smtp", "smtps"))
except env.FileSettingError:
    raise  # IDP_SMTP_URL_FILE unreadable or empty: its own message names the file
except ImproperlyConfigured:
    raise ImproperlyConfigured(_SMTP_URL_FORM) from None
# A PEM bundle of the CA certificates that verify the SMTP server (a private CA); unset = the
# system's trust store.
SMTP_CA_FILE = env.existing_file("IDP_SMTP_CA_FILE")
# Tries after the first failed delivery before a message is given up (`mail.failed`).
MAIL_RETRIES = env.integer("IDP_MAIL_RETRIES", 8, minimum=0, maximum=30)
# Seconds before the first retry; each next one waits twice as long (at most 10 minutes), less
# up to half at random so a recovered server is not hit by every message at once.
MAIL_RETRY_BASE_SECONDS = env.integer("IDP_MAIL_RETRY_BASE_SECONDS", 10, minimum=0, maximum=3600)
MAIL_DIR = DATA_DIR / "mail"
EMAIL_TIMEOUT = 10  # seconds per SMTP operation: a stuck server fails the try, which retries
if SMTP_URL:
    _smtp = urlsplit(SMTP_URL)
    _smtp_url_invalid = False
    if not _smtp.hostname or _smtp.path not in ("", "/") or _smtp.query or _smtp.fragment:
        _smtp_url_invalid = True
    try:
        EMAIL_PORT = _smtp.port or (465 if _smtp.scheme == "smtps" else 587)
    except ValueError:
        _smtp_url_invalid = True
    if _smtp_url_invalid:
        raise ImproperlyConfigured(_SMTP_URL_FORM)
    EMAIL_BACKEND = "apps.core.mail.SMTPBackend"
    EMAIL_HOST = _smtp.hostname
    EMAIL_HOST_USER = unquote(_smtp.username or "")
    EMAIL_HOST_PASSWORD = unquote(_smtp.password or "")
    EMAIL_USE_SSL = _smtp.scheme == "smtps"
    EMAIL_USE_TLS = _smtp.scheme == "smtp"
elif PRODUCTION:
    # Verification and password-reset links that land in a file reach nobody: a person who
    # forgot their password would wait for a mail that never comes.
    raise ImproperlyConfigured(
        "IDP_SMTP_URL is not set: production sends verification, password-reset and security "
        "mail through SMTP (smtp://user:password@host:587 with STARTTLS, or smtps://…:465)."
    )
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(MAIL_DIR)

# --- E-mail verification and password reset (apps/signin/recovery.py) -------------------

# Hours a link to verify an e-mail address stays valid (it is single use either way).
EMAIL_VERIFY_HOURS = env.integer("IDP_EMAIL_VERIFY_HOURS", 24, minimum=1, maximum=168)
# Minutes a password-reset link stays valid; it also dies when used or when the password
# changes (OWASP Forgot Password Cheat Sheet: single use, short expiry).
PASSWORD_RESET_MINUTES = env.integer("IDP_PASSWORD_RESET_MINUTES", 30, minimum=5, maximum=1440)

# --- Second factors (apps/mfa, the sign-in pipeline's second-factor step)

# Every person must prove a second factor at sign-in (NIST SP 800-63B AAL2), whatever the
# client asks; a person without one enrols one at sign-in. Off by default: a person who has
# enrolled a factor is asked for it anyway, and a person (operator or threat response), an
# organization (its policy) or a client (require_mfa) can each require one.
MFA_REQUIRED = env.boolean("IDP_MFA_REQUIRED", False)
# Wrong second-factor answers (TOTP, recovery code, WebAuthn) per person before their second
# factor locks, for LOCKOUT_WAIT_INCREMENT x the lockouts so far (capped at LOCKOUT_MAX_WAIT):
# counted apart from passwords, by account id (Keycloak issue 46164; NIST SP 800-63B §5.2.2).
MFA_LOCKOUT_THRESHOLD = env.integer("IDP_MFA_LOCKOUT_THRESHOLD", 5, minimum=1, maximum=100)

# --- Threat responses (apps/threat/responses.py, alerts.py, tasks.py; docs/threat.md) ------

# Where a threat rule's alert is POSTed (JSON, signed: docs/threat.md "Responses"); none: no
# webhook. https only: http is accepted for a loopback host alone (127.0.0.0/8, ::1,
# localhost), an explicit exception for tests and development (OWASP ASVS 9.2.1).
THREAT_WEBHOOK_URL = env.url("IDP_THREAT_WEBHOOK_URL", None, schemes=("https", "http"))
if THREAT_WEBHOOK_URL is not None and THREAT_WEBHOOK_URL.startswith("http://"):
    _hook_host = (urlsplit(THREAT_WEBHOOK_URL).hostname or "").lower()
    if not (_hook_host == "localhost" or env.is_loopback(_hook_host)):
        raise ImproperlyConfigured(
            f"IDP_THREAT_WEBHOOK_URL={THREAT_WEBHOOK_URL!r} is not valid: expected an https:// "
            "URL (http:// is accepted only for a loopback host such as 127.0.0.1 or localhost)."
        )
# The HMAC-SHA256 key the webhook's Tessera-Signature header is computed with (at least 32
# characters; required with IDP_THREAT_WEBHOOK_URL).
THREAT_WEBHOOK_SECRET = env.optional_string("IDP_THREAT_WEBHOOK_SECRET") or ""
# The key before a rotation: while set, each alert carries a second v1 signature made with
# it, so receivers can switch keys without missing an alert.
THREAT_WEBHOOK_SECRET_PREVIOUS = env.optional_string("IDP_THREAT_WEBHOOK_SECRET_PREVIOUS") or ""
for _name, _secret in (
    ("IDP_THREAT_WEBHOOK_SECRET", THREAT_WEBHOOK_SECRET),
    ("IDP_THREAT_WEBHOOK_SECRET_PREVIOUS", THREAT_WEBHOOK_SECRET_PREVIOUS),
):
    if _secret and len(_secret) < 32:
        raise ImproperlyConfigured(f"{_name} is too short: expected at least 32 characters.")
if THREAT_WEBHOOK_URL is not None and not THREAT_WEBHOOK_SECRET:
    raise ImproperlyConfigured(
        "IDP_THREAT_WEBHOOK_URL is set but IDP_THREAT_WEBHOOK_SECRET is not: alerts are signed "
        "so that a receiver can tell them from forgeries (32 characters or more)."
    )
# Seconds one webhook attempt may take (connect and answer) before it counts as failed.
THREAT_WEBHOOK_TIMEOUT = env.integer("IDP_THREAT_WEBHOOK_TIMEOUT", 5, minimum=1, maximum=60)
# Retries of a failed webhook delivery (a network error, a timeout, any answer but 2xx)
# before it is given up and logged (threat.webhook_failed).
THREAT_WEBHOOK_RETRIES = env.integer("IDP_THREAT_WEBHOOK_RETRIES", 8, minimum=0, maximum=30)
# Seconds before the first retry; each next doubles (capped at 10 min), with jitter.
THREAT_WEBHOOK_RETRY_BASE_SECONDS = env.integer(
    "IDP_THREAT_WEBHOOK_RETRY_BASE_SECONDS", 10, minimum=0, maximum=3600
)
# Operators who get each alert by e-mail (comma-separated addresses); none: no e-mail.
THREAT_ALERT_EMAILS = env.emails("IDP_THREAT_ALERT_EMAILS")
# Seconds during which the same rule for the same person (or, for an unknown address, the
# same IP) alerts once: a credential-stuffing run sends one alert per account, not thousands.
THREAT_ALERT_DEDUP_SECONDS = env.integer(
    "IDP_THREAT_ALERT_DEDUP_SECONDS", 300, minimum=0, maximum=86400
)

# --- Registration and invitations (apps/signin/registration.py, apps/accounts/invitations.py)

# Who may create their own account at /register: "off" (operators create accounts; people
# given an organization's invitation link still register through it) or "open" (anyone).
# Either way the account is created only when the address is verified (a link mailed to it).
REGISTRATION = env.choice("IDP_REGISTRATION", "off", ("off", "open"))
# Seconds a registration link (mailed to the address being registered) stays valid: a day.
REGISTRATION_LINK_MAX_AGE = env.integer(
    "IDP_REGISTRATION_LINK_MAX_AGE", 86400, minimum=300, maximum=7 * 86400
)
# Days an organization's invitation link stays valid when its creator does not say.
INVITATION_DAYS = env.integer("IDP_INVITATION_DAYS", 7, minimum=1, maximum=90)
RATELIMIT_RULES.update(
    {
        # Registration and invitation posts (/register, /invite/<token>) per client IP.
        "register.ip": env.rate("IDP_RATELIMIT_REGISTER_IP", "20/1h burst=5 backoff=linear"),
        # … per address typed (existing or not): each post mails that address, so this caps
        # the mail anyone can make us send to one person (OWASP ASVS 4.0.3 11.1.4: anti-automation).
        "register.account": env.rate("IDP_RATELIMIT_REGISTER_ACCOUNT", "5/1h burst=3"),
        "register.endpoint": env.rate("IDP_RATELIMIT_REGISTER_ENDPOINT", "100/1s"),
    }
)

# --- Federation: upstream identity providers (apps/federation; docs/federation.md) ------------

# Accept http:// for an upstream issuer and its endpoints on loopback (127.0.0.0/8, ::1,
# localhost) only: for trying a provider on this machine. Off: upstreams are https:// only.
FEDERATION_ALLOW_LOOPBACK_HTTP = env.boolean("IDP_FEDERATION_ALLOW_LOOPBACK_HTTP", False)
# Seconds to connect to, and then to wait for an answer from, an upstream provider.
FEDERATION_TIMEOUT_SECONDS = env.integer("IDP_FEDERATION_TIMEOUT_SECONDS", 5, minimum=1, maximum=60)
# Extra tries of an upstream read (discovery, JWKS, userinfo, GitHub's API) after a
# connection error or a 502/503/504; never of the code exchange (a code is used once).
FEDERATION_RETRIES = env.integer("IDP_FEDERATION_RETRIES", 2, minimum=0, maximum=5)
# The largest upstream answer read (bytes); a longer one is refused, not read to its end.
FEDERATION_MAX_RESPONSE_BYTES = env.integer(
    "IDP_FEDERATION_MAX_RESPONSE_BYTES", 1_048_576, minimum=16_384, maximum=16_777_216
)
# Seconds a started upstream sign-in (its state, PKCE verifier and nonce, kept in Redis) may
# take before its callback is refused.
FEDERATION_STATE_SECONDS = env.integer(
    "IDP_FEDERATION_STATE_SECONDS", 600, minimum=60, maximum=3600
)
# The login page and authorize's idp_hint/login_hint reach federation through this port
# (apps/core/federation.py): signin and tokens do not import apps.federation.
FEDERATION_DIRECTORY = "apps.federation.selectors.Directory"
RATELIMIT_RULES.update(
    {
        # Upstream sign-ins begun and callbacks taken (/login/federated/…) per client IP: a
        # callback is a credential (a code), limited like the sign-in form (OWASP ASVS 4.0.3
        # 2.2.1 anti-automation).
        "federation.ip": env.rate(
            "IDP_RATELIMIT_FEDERATION_IP", "30/1m burst=10 backoff=exponential"
        ),
        "federation.endpoint": env.rate("IDP_RATELIMIT_FEDERATION_ENDPOINT", "300/1s"),
    }
)

# --- Security headers and cookies (OWASP ASVS V3, V14) ----------------------------------

# Browser sessions in the database, through a store that spends one INSERT per sign-in
# (apps/sessions/browser_store.py) instead of django.contrib.sessions' three.
SESSION_ENGINE = "apps.sessions.browser_store"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
# Our 403 page for a failed CSRF check: branded, with the request id and what to do.
CSRF_FAILURE_VIEW = "apps.core.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
# same-origin, not no-referrer: with no-referrer Chromium posts forms with "Origin: null"
# and CSRF origin checking refuses every sign-in. Nothing leaks to other sites either way.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = [f"{_issuer_parts.scheme}://{_issuer_parts.netloc}"]
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    # Load balancers probe health over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# HSTS max-age in seconds, sent only over TLS (request.is_secure()); 0 = none. Two years in
# production, as the HSTS preload list asks (RFC 6797 §6.1.1; hstspreload.org).
SECURE_HSTS_SECONDS = env.integer(
    "IDP_HSTS_SECONDS", 63072000 if PRODUCTION else 0, minimum=0, maximum=2 * 63072000
)
# HSTS for every subdomain of the issuer's host too (RFC 6797 §6.1.2).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("IDP_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
# Ask to be on browsers' preload list (needs includeSubDomains and a year's max-age at least).
SECURE_HSTS_PRELOAD = env.boolean("IDP_HSTS_PRELOAD", PRODUCTION)
# The path browsers post CSP violation reports to (apps/core/csp_reports.py).
CSP_REPORT_PATH = "/csp-report"
# Content-Security-Policy of every HTML response (django-csp; non-HTML responses get
# "default-src 'none'; frame-ancestors 'none'", apps/core/security_headers.py). A nonce per
# response for our script and style tags, never 'unsafe-inline' (OWASP CSP Cheat Sheet,
# "strict CSP"); forms post to us only, except on the pages whose forms end at a client
# (security_headers.leave_form_action_open says why); frames only on the signed-out page
# (front-channel logout), for those origins only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF],
        "connect-src": [SELF],
        "font-src": [SELF],
        "frame-src": [NONE],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "report-uri": CSP_REPORT_PATH,
        "report-to": "csp",
    }
}
# Whether a sign-in page's `next` ends at a client (a registered redirect URI): the port of
# apps/core/security_headers.allow_continuation (core does not import tokens).
CSP_CONTINUATION = "apps.tokens.authorize.continuation_redirect_uri"
# Browser features no page of ours uses are denied; WebAuthn (passkeys) only for our own
# origin (W3C Permissions Policy; WebAuthn Level 2 §5.9).
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), "
    "gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=(), "
    "publickey-credentials-get=(self), publickey-credentials-create=(self)"
)
# Headers added to every response, as a JSON object ({"X-Robots-Tag": "noindex"}); those
# Tessera sets itself are refused at startup (apps/core/security_headers.py MANAGED_HEADERS).
EXTRA_HEADERS = env.headers("IDP_EXTRA_HEADERS", reserved=MANAGED_HEADERS)
if TRUSTED_PROXIES:
    # Believed only because the operator named the proxies that set it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Celery ------------------------------------------------------------------------------

CELERY_BROKER_URL, _broker_options = (
    _celery_broker("CELERY_BROKER_URL", _broker_env)
    if _broker_env
    else _celery_broker("REDIS_URL", REDIS_URL)
)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# Sentinel: master_name. Bounded like the broker below: the process that sends a task first
# subscribes to its result here (Celery's backend.on_task_call), so a broker down held a
# logout through 20 reconnects a second apart (19 s, tests/faults/test_broker_down.py), and a
# frozen one through 120 s reads (Celery's default redis_socket_timeout).
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    **_broker_options,
    "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
}
CELERY_REDIS_SOCKET_TIMEOUT = HEALTH_CHECK_TIMEOUT  # each result-backend command
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = HEALTH_CHECK_TIMEOUT  # each result-backend connection
CELERY_RESULT_EXPIRES = 3600
# Nothing in Tessera reads a task's result: stored, each task left a key in Redis for an hour
# (10,000 of the 20,000 keys twelve minutes into the soak, benchmarks/soak.py) and made its
# sender subscribe to the result first. A caller that waits for one asks for it
# (`apply_async(ignore_result=False)`, as the tests do).
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our JSON log lines
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": HEALTH_CHECK_TIMEOUT,
    # Each command too, as the app's Redis client (apps/core/redis.py): without it a broker
    # that accepts but never answers (frozen, partitioned) held a logout's publish forever.
    "socket_timeout": HEALTH_CHECK_TIMEOUT,
    **_broker_options,
}
# A task queued from a request (after commit) is tried twice, then left to its sweep (a lost
# Back-Channel Logout is re-queued: apps/tokens/tasks.py) or lost, with one WARNING line
# (apps/core/commit.py; docs/operations.md "The broker down"): a frozen broker costs a request
# about three IDP_HEALTH_CHECK_TIMEOUTs (6 s measured: tests/faults/test_broker_down.py), a
# refused one nothing; Celery's default tried four times.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "apps.core.tasks.heartbeat",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    "rotate-signing-keys": {
        "task": "apps.keys.tasks.rotate_signing_keys",
        "schedule": 3600.0,  # publishes, activates and retires keys on their schedule
        "options": {"expires": 3600.0},
    },
    "redeliver-stalled-backchannel-logouts": {
        "task": "apps.tokens.tasks.redeliver_stalled_backchannel_logouts",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    "lift-expired-blocks": {
        "task": "apps.accounts.tasks.lift_expired_blocks",
        "schedule": 60.0,  # a block whose time passed is lifted (and recorded) within a minute
        "options": {"expires": 60.0},
    },
    "apply-audit-retention": {
        "task": "apps.audit.tasks.apply_retention",
        "schedule": crontab(hour=3, minute=30),  # daily, at a fixed time whatever beat restarts
        "options": {"expires": 3600.0},
    },
}
if CLICKHOUSE_URL is not None:  # without it the outbox is the audit store: nothing ships
    CELERY_BEAT_SCHEDULE["ship-audit-events"] = {
        "task": "apps.audit.tasks.ship_events",
        "schedule": float(AUDIT_SHIP_INTERVAL),  # a run ships until the outbox is drained
        "options": {"expires": float(AUDIT_SHIP_INTERVAL)},
    }

# --- Logging: one JSON object per line on stdout -----------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "json"},
        "one_warning_line": {"class": "apps.core.logging.OneWarningLine"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log line replaces Django's per-request warnings.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        # A SuspiciousOperation (bad Host, too many fields, body too big) is a client's error:
        # one WARNING line with the request id, not ERROR with a traceback (core/logging.py).
        "django.security": {"handlers": ["one_warning_line"]},
        # gunicorn's own loggers, so the web server's lines are JSON too.
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
        # clickhouse-driver warns, with a traceback, at every failed connection attempt; the
        # audit shipper logs a ClickHouse outage once instead (apps/audit/shipping.py).
        "clickhouse_driver": {"level": "ERROR"},
    },
}

# --- OAuth 2.0 (django-oauth-toolkit): every RFC 9700 gate on --------------------------

# Scopes a client may ask for, with the words the consent page shows (OIDC Core §5.4).
SCOPES: dict[str, str] = {
    "openid": "Sign you in with your account",
    "profile": "See your name",
    "email": "See your email address",
    # OIDC Core §11: a refresh token that outlives the sign-in; honoured only with
    # prompt=consent (or a consent already given for it) and a client allowed refresh_token.
    "offline_access": "Stay connected to you while you are signed out",
    # The admin API (apps/console/api/): honoured only for an active staff user's token.
    "admin": "Administer Tessera (staff only)",
}
# Our own models behind DOT's: clients with several grant types, tokens tied to login sessions.
OAUTH2_PROVIDER_APPLICATION_MODEL = "tokens.Client"
OAUTH2_PROVIDER_GRANT_MODEL = "tokens.Grant"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "tokens.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "tokens.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "tokens.IDToken"
# RFC 6749 §4.1.2: authorization codes are short-lived and single-use.
AUTHORIZATION_CODE_LIFETIME = 60
OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "apps.tokens.oauth_validator.TesseraValidator",
    "OAUTH2_SERVER_CLASS": "oauthlib.openid.Server",
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": ISSUER,
    "OIDC_USERINFO_ENDPOINT": f"{ISSUER}/oauth/userinfo",
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "SCOPES": SCOPES,
    "SCOPES_BACKEND_CLASS": "apps.tokens.scopes.TesseraScopes",
    "DEFAULT_SCOPES": ["openid"],
    "CLIENT_SECRET_HASHER": "hmac_sha256",
    "ACCESS_TOKEN_EXPIRE_SECONDS": ACCESS_TOKEN_LIFETIME,
    # DOT's own sliding limit (after the access token expires); the lifetimes that matter are
    # ours (family_expires_at, the login session, the offline grant's idle timeout), so it is
    # kept out of their way.
    "REFRESH_TOKEN_EXPIRE_SECONDS": max(REFRESH_TOKEN_LIFETIME, OFFLINE_ACCESS_LIFETIME),
    "ID_TOKEN_EXPIRE_SECONDS": ID_TOKEN_LIFETIME,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": AUTHORIZATION_CODE_LIFETIME,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,  # §2.1.2: no implicit grant
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,  # §2.4: no password grant
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # §2.1.1: S256 only, never "plain"
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,  # §4.3.2: no tokens in query strings
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,  # §4.4, RFC 9207: iss in responses
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,  # §4: tokens hashed at rest
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,  # §4.14.2
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,  # §4.1.1: exact match
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,  # §2.1.1
    # §2.1: http redirect URIs are an explicit, documented opt-in (a warning in production).
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": not ALLOW_HTTP_REDIRECT_URIS,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"] if ALLOW_HTTP_REDIRECT_URIS else ["https"],
    "PKCE_REQUIRED": True,
    "ALLOW_URI_WILDCARDS": False,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,  # RFC 9700 §4.14.2: replay revokes the family
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
}

# The admin API (/api/v1/): a staff browser session (CSRF enforced on unsafe methods) or a
# Bearer access token with the admin scope whose user is active staff.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.console.api.authentication.AdminBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The strictest class (administrators only) unless a view names its own: an endpoint
    # that forgets to is closed, not open to every staff member (OWASP ASVS 4.1.5).
    "DEFAULT_PERMISSION_CLASSES": ["apps.console.permissions.AdministratorOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's three, the JSON one refusing a too-deeply nested body with a 400 (issue 20).
    "DEFAULT_PARSER_CLASSES": [
        "apps.console.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.console.api.views.exception_handler",
}

# The OpenAPI 3 document served at /api/schema/ (no Swagger UI: it would need outside JS).
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera admin API",
    "DESCRIPTION": "Find users, see their login sessions and security events, end sessions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # The map of the admin API is for the people who may call it: staff sessions and admin
    # Bearer tokens, as for the API itself (least disclosure, OWASP ASVS 4.0 V14.3).
    "SERVE_PERMISSIONS": ["apps.console.permissions.StaffRead"],
    # Two fields named "kind": a lockout's and a rate-limit key's.
    "ENUM_NAME_OVERRIDES": {
        "LockoutKindEnum": "apps.ratelimit.services.KINDS",
        "RateLimitKeyKindEnum": "apps.ratelimit.services.KEY_KINDS_SHOWN",
        "PermissionScopeEnum": "apps.accounts.models.PermissionScope",
        "MfaRequiredByEnum": "apps.accounts.models.MfaRequiredBy",  # also who blocked a person
        # a client's token_endpoint_auth_method (RFC 8705) and an upstream provider's
        # client_auth_method: two sets of values, two enums
        "ClientAuthMethodEnum": "apps.tokens.models.Client.AuthMethod",
        "UpstreamClientAuthMethodEnum": "apps.federation.models.ClientAuthMethod",
    },
    # drf-spectacular's enum hook, then the answers every admin API operation may give.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.console.api.schema.shared_responses",
    ],
}

# --- Threat baselines (apps/threat/baselines.py; docs/threat.md "Baselines") -----------------

# Days of successful sign-ins each person's baseline is rebuilt from (the daily job).
THREAT_BASELINE_DAYS = env.integer("IDP_THREAT_BASELINE_DAYS", 90, minimum=1, maximum=180)
# UTC hour at which beat starts the daily rebuild of every person's baseline.
THREAT_BASELINE_REBUILD_HOUR = env.integer(
    "IDP_THREAT_BASELINE_REBUILD_HOUR", 4, minimum=0, maximum=23
)
CELERY_BEAT_SCHEDULE["rebuild-threat-baselines"] = {
    "task": "apps.threat.tasks.rebuild_baselines",
    "schedule": crontab(hour=THREAT_BASELINE_REBUILD_HOUR, minute=0),  # daily, UTC
    "options": {"expires": 3600.0},
}
# The successful sign-ins baselines are built from (apps/core/signin_history.py port).
SIGN_IN_HISTORY = "apps.audit.selectors.past_sign_ins"

# --- mutual TLS, RFC 8705 (mtls) ------------------------------------------------------------

# PEM bundle of the CAs a tls_client_auth client's certificate must chain to (RFC 8705 §2.1);
# unset: no client can authenticate with tls_client_auth (self-signed ones still can, §2.2).
MTLS_CLIENT_CA_FILE = env.existing_file("IDP_MTLS_CLIENT_CA_FILE")
# Header a trusted proxy (IDP_TRUSTED_PROXIES) forwards the client certificate in: URL-encoded
# PEM (nginx $ssl_client_escaped_cert) or RFC 9440 `:base64 DER:`; ignored from anyone else.
MTLS_CLIENT_CERT_HEADER = env.string("IDP_MTLS_CLIENT_CERT_HEADER", "X-Client-Cert")
if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", MTLS_CLIENT_CERT_HEADER):
    raise ImproperlyConfigured("IDP_MTLS_CLIENT_CERT_HEADER must be a header name (A-Z, 0-9, -)")

# --- DPoP, RFC 9449 (dpop) (apps/tokens/dpop.py; docs/dpop.md) ------------------------------

# Algorithms a DPoP proof may be signed with: asymmetric only (RFC 9449 §4.2, never none or
# HS*); published as dpop_signing_alg_values_supported.
DPOP_SIGNING_ALGS: tuple[str, ...] = tuple(
    env.string("IDP_DPOP_SIGNING_ALGS", "ES256 EdDSA PS256 RS256").replace(",", " ").split()
)
_DPOP_ASYMMETRIC: tuple[str, ...] = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
_DPOP_ASYMMETRIC += ("RS256", "RS384", "RS512", "EdDSA")
if not DPOP_SIGNING_ALGS or not set(DPOP_SIGNING_ALGS) <= set(_DPOP_ASYMMETRIC):
    raise ImproperlyConfigured(
        f"IDP_DPOP_SIGNING_ALGS={' '.join(DPOP_SIGNING_ALGS)!r} is not valid: expected "
        f"asymmetric JWS algorithms among {' '.join(_DPOP_ASYMMETRIC)} (RFC 9449 §4.2: never "
        "none or a MAC)."
    )
# Seconds a proof's iat may lie in the past (RFC 9449 §11.1); its jti is remembered as long.
DPOP_PROOF_MAX_AGE = env.integer("IDP_DPOP_PROOF_MAX_AGE", 60, minimum=5, maximum=600)
# Seconds a proof's iat may lie in the future: the clients' clock skew (RFC 9449 §4.3 step 11).
DPOP_PROOF_MAX_SKEW = env.integer("IDP_DPOP_PROOF_MAX_SKEW", 5, minimum=0, maximum=300)
# Whether the token endpoint and resources demand a server nonce in every proof (§8, §9).
DPOP_NONCE_REQUIRED = env.boolean("IDP_DPOP_NONCE_REQUIRED", True)
# Seconds one DPoP-Nonce is handed out; the previous one stays good for as long again (§8.2).
DPOP_NONCE_LIFETIME = env.integer("IDP_DPOP_NONCE_LIFETIME", 300, minimum=30, maximum=3600)
