"""Prometheus counters of what Tessera does, kept across processes (prometheus-client's
multi-process mode); /metrics exposes them (apps/core/metrics_view.py).

Two sources, both in this module so that what is counted reads in one place:

- Requests: RequestContextMiddleware calls observe_request() once per response, labelled by
  the URL route's name (never the raw path: a scanner's URLs would each become a series).
- Security events: emit() (apps/core/events.py) calls count_event() for every event, and
  EVENT_COUNTERS below maps event types to the counters operators watch (tokens per grant,
  sign-ins by outcome, MFA, federation, lockouts, threat actions). No app increments a
  counter of its own; a new event type is counted in tessera_events_total at once and gets a
  counter of its own by a line here.

Each server process (granian's workers, Celery's prefork children, beat, the mutual-TLS
listener) writes its values to mmap'd files under METRICS_DIR/<role>-<pid>/ when its role set
PROMETHEUS_MULTIPROC_DIR (use_directory()); a process with none (manage.py commands, the test
runner) keeps them in memory, where only it can see them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
ROLES = ("web", "mtls", "worker", "beat")

# Counters kept only in this process when no directory is set; exposed as they are then.
LOCAL = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "tessera_http_requests",
    "HTTP responses by URL route name, method and status code.",
    ["route", "method", "status"],
    registry=LOCAL,
)
LATENCY = Histogram(
    "tessera_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by URL route name.",
    ["route"],
    # From a cached discovery document (~1 ms) to an argon2id sign-in (~100-300 ms) and a
    # slow dependency (seconds).
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=LOCAL,
)
EVENTS = Counter(
    "tessera_events",
    "Security events recorded (the catalog of apps/core/events.py), by type and success.",
    ["event_type", "success"],
    registry=LOCAL,
)
TOKENS_ISSUED = Counter(
    "tessera_tokens_issued",
    "Token responses of the token endpoint, by grant type (token.issued, token.refreshed).",
    ["grant_type"],
    registry=LOCAL,
)
SIGN_INS = Counter(
    "tessera_sign_ins",
    "Sign-in attempts by outcome: succeeded, or login.failed's error_code.",
    ["outcome"],
    registry=LOCAL,
)
MFA = Counter(
    "tessera_mfa",
    "Second-factor attempts by outcome (succeeded, recovery_code, or mfa.failed's "
    "error_code) and factor.",
    ["outcome", "factor"],
    registry=LOCAL,
)
FEDERATION = Counter(
    "tessera_federation",
    "Sign-ins through upstream providers by outcome: linked, or federation.failed's error_code.",
    ["outcome"],
    registry=LOCAL,
)
RATE_LIMITED = Counter(
    "tessera_ratelimit_limited_keys",
    "Rate-limit keys that began refusing, by rule (one per key and window; the refused "
    "requests themselves are tessera_http_requests_total with status 429).",
    ["rule"],
    registry=LOCAL,
)
LOCKOUTS = Counter(
    "tessera_lockouts",
    "Identifiers locked after too many failed attempts, by kind (login, mfa, client).",
    ["kind"],
    registry=LOCAL,
)
THREAT_ACTIONS = Counter(
    "tessera_threat_actions",
    "Threat assessments by the action decided (allow, alert, require_mfa, "
    "invalidate_sessions, block) and kind (sign-in or session activity).",
    ["action", "kind"],
    registry=LOCAL,
)

# --- bounded label values -----------------------------------------------------------------

# A label value comes from our code (error codes, grant types), but some travel through data
# (a rule's name, an upstream's error code): anything not shaped like a code is "other", and
# each counter keeps at most MAX_VALUES distinct values per label in a process.
_CODE = re.compile(r"^[a-z0-9_.:-]{1,48}$")
MAX_VALUES = 64
_seen: dict[tuple[str, str], set[str]] = {}
_seen_lock = threading.Lock()


def bounded(counter: str, label: str, value: object) -> str:
    text = str(value or "")
    if not _CODE.match(text):
        return "other" if text else "none"
    key = (counter, label)
    seen = _seen.get(key)
    if seen is not None and text in seen:
        return text
    with _seen_lock:
        seen = _seen.setdefault(key, set())
        if text in seen or len(seen) < MAX_VALUES:
            seen.add(text)
            return text
    return "other"


# --- security events --> counters ------------------------------------------------------------

Event = Mapping[str, Any]


def _meta(event: Event, key: str) -> object:
    metadata = event.get("metadata") or {}
    return metadata.get(key) if isinstance(metadata, Mapping) else None


def _token(event: Event) -> None:
    TOKENS_ISSUED.labels(bounded("tokens", "grant_type", _meta(event, "grant_type"))).inc()


def _sign_in(event: Event) -> None:
    outcome = "succeeded" if event["success"] else event["error_code"]
    SIGN_INS.labels(bounded("sign_ins", "outcome", outcome)).inc()


def _mfa(event: Event) -> None:
    if event["event_type"] == "mfa.recovery_code_used":
        outcome = "recovery_code"
    else:
        outcome = "succeeded" if event["success"] else event["error_code"]
    factor = bounded("mfa", "factor", event["resource_type"])
    MFA.labels(bounded("mfa", "outcome", outcome), factor).inc()


def _federation(event: Event) -> None:
    outcome = "linked" if event["event_type"] == "federation.linked" else event["error_code"]
    FEDERATION.labels(bounded("federation", "outcome", outcome)).inc()


def _rate_limited(event: Event) -> None:
    RATE_LIMITED.labels(bounded("ratelimit", "rule", _meta(event, "rule"))).inc()


def _lockout(event: Event) -> None:
    LOCKOUTS.labels(bounded("lockouts", "kind", _meta(event, "kind"))).inc()


def _threat(event: Event) -> None:
    action = bounded("threat", "action", _meta(event, "action"))
    THREAT_ACTIONS.labels(action, bounded("threat", "kind", _meta(event, "kind"))).inc()


# The one map from the event catalog to the counters above (event type values, not the enum:
# core.events imports this module).
EVENT_COUNTERS: dict[str, Callable[[Event], None]] = {
    "token.issued": _token,
    "token.refreshed": _token,
    "login.succeeded": _sign_in,
    "login.failed": _sign_in,
    "mfa.succeeded": _mfa,
    "mfa.failed": _mfa,
    "mfa.recovery_code_used": _mfa,
    "federation.linked": _federation,
    "federation.failed": _federation,
    "ratelimit.exceeded": _rate_limited,
    "account.locked": _lockout,
    "threat.assessed": _threat,
}


def count_event(event: Event) -> None:
    """Called by emit() once the event is recorded. Counted when recorded, so an event whose
    transaction later rolls back is counted too (rare: the request then fails). Never raises:
    a recorded event must not fail for its counter (a full or removed metrics folder)."""
    try:
        EVENTS.labels(event["event_type"], "true" if event["success"] else "false").inc()
        counter = EVENT_COUNTERS.get(event["event_type"])
        if counter is not None:
            counter(event)
    except Exception as error:  # counted nowhere rather than the event failing
        _lost(error)


# --- requests ---------------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    """route: the resolved URL pattern's name ("oauth2_provider:token"), "unmatched" for a
    path no route takes, "refused" for a request answered before routing (rate limit, size)."""
    try:
        REQUESTS.labels(route, method if method in _METHODS else "OTHER", str(status)).inc()
        LATENCY.labels(route).observe(seconds)
    except Exception as error:  # the response goes out whatever happens to its counter
        _lost(error)


_warned = threading.Event()


def _lost(error: Exception) -> None:
    if not _warned.is_set():  # once per process: it would repeat on every request
        _warned.set()
        logging.getLogger("tessera.metrics").error(
            "metrics: a value could not be counted; counters are incomplete from now on",
            extra={"error": f"{type(error).__name__}: {error}"[:300]},
        )


# --- where the values live --------------------------------------------------------------------


def prepare_directory(root: Path, role: str) -> Path:
    """This server's folder, `<role>-<pid>` (the pid of the role's main process, which outlives
    its workers), emptied; the folders of servers that are gone are removed. Two servers on one
    data dir (several `python -m idp.web` in the suite, or web and worker with `make run`)
    never empty each other's, and what a stopped run left is not added to this one's."""
    if role not in ROLES:
        raise ValueError(f"unknown metrics role {role!r}")
    for stale in root.glob("*-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    directory = root / f"{role}-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    return directory


def use_directory(directory: Path) -> None:
    """Keep this process's values (and its children's: the variable is inherited, and
    prometheus-client opens new files after a fork) in `directory`. Our counters are all
    labelled, so their values are created at their first use, after this call."""
    os.environ[ENVIRONMENT_VARIABLE] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def start_role(root: Path, role: str) -> Path | None:
    """At the start of a server role's main process, before it forks or execs its workers.
    A folder that cannot be made (a read-only filesystem without the run volume) costs the
    counters of this role, never the process: they stay in memory, and a warning says so."""
    try:
        directory = prepare_directory(root, role)
    except OSError as error:
        logging.getLogger("tessera.metrics").warning(
            "metrics folder not writable; this %s's counters are not exported", role,
            extra={"folder": str(root), "error": str(error)},
        )  # fmt: skip
        return None
    use_directory(directory)
    return directory


def directory_files(root: Path) -> list[str]:
    """Every role's files, for one merged exposition (the same series from web and worker
    processes add up)."""
    return sorted(str(path) for path in root.glob("*/*.db"))


def multiprocess() -> bool:
    return bool(os.environ.get(ENVIRONMENT_VARIABLE))


# A granian worker is exec'd with the variable its server set: values go to files from the start.
if multiprocess():
    use_directory(Path(os.environ[ENVIRONMENT_VARIABLE]))
