"""The process's Redis client, made from REDIS_URL by one function for every caller: a single
server, a primary found through Redis Sentinel, or a Redis Cluster (docs/redis-ha.md).

    redis://[[user]:password@]host[:port][/db]        one server (rediss:// for TLS)
    unix://[[user]:password@]/path/redis.sock[?db=N]  one server on a unix socket
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
                     [?sentinel_password=...]         the primary Sentinel names `service`
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]   a Redis Cluster

Sentinels default to port 26379, cluster nodes to 6379. The password is the data nodes'
(`requirepass`); Sentinels that ask for one of their own get `sentinel_password`. Any listed
Sentinel or node will do to start: the client asks them for the rest. TLS to Sentinel or
Cluster is not offered yet (refused with a message), nor are other query options.

Every module reaches Redis through get_redis(); Django's cache (CACHES, for libraries that
use it) gets the same client through CacheConnectionFactory, and Celery's broker URL is
derived by kombu_broker(), so one URL configures all three.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from django.conf import settings
from django_redis.pool import ConnectionFactory  # type: ignore[import-untyped]
from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

SERVER_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SCHEMES = (*SERVER_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
SENTINEL_PORT = 26379
CLUSTER_PORT = 6379


class RedisURLError(ValueError):
    """A Redis URL Tessera cannot use; the message names what is wrong (never the password)."""


@dataclass(frozen=True)
class RedisLocation:
    """Where Redis is, as REDIS_URL says."""

    kind: Literal["server", "sentinel", "cluster"]
    url: str  # as given (for a single server, handed to redis-py's from_url)
    nodes: tuple[tuple[str, int], ...] = ()  # Sentinels, or cluster nodes to start from
    service: str = ""  # the Sentinel service (master) name
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def _split(url: str) -> SplitResult:
    """urlsplit for URLs whose netloc lists several hosts: some Python builds (Debian 12's
    3.11.2) refuse a bracketed IPv6 host that is not the whole netloc ("Invalid IPv6 URL")."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return SplitResult("", "", url, "", "")
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    end = min(ends, default=len(rest))
    tail = urlsplit("x://h" + rest[end:])
    return SplitResult(scheme.lower(), rest[:end], tail.path, tail.query, tail.fragment)


def parse_redis_url(url: str) -> RedisLocation:
    parts = _split(url)
    if parts.scheme in SERVER_SCHEMES:
        return RedisLocation("server", url)
    if parts.scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        if parts.scheme in ("rediss+sentinel", "rediss+cluster"):
            raise RedisURLError(f"{parts.scheme}:// (TLS to Sentinel or Cluster) is not supported")
        raise RedisURLError("the scheme must be one of " + ", ".join(f"{s}://" for s in SCHEMES))
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinel = parts.scheme == SENTINEL_SCHEME
    nodes = tuple(
        _node(item, SENTINEL_PORT if sentinel else CLUSTER_PORT) for item in hostlist.split(",")
    )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    allowed = {"sentinel_password"} if sentinel else set()
    if unknown := sorted(set(query) - allowed):
        raise RedisURLError(f"unknown option {unknown[0]!r} in {parts.scheme}://")
    path = [segment for segment in parts.path.split("/") if segment]
    if sentinel:
        if not path or len(path) > 2:
            raise RedisURLError(
                "redis+sentinel:// needs the service name as its path: /mymaster[/db]"
            )
        service, db = unquote(path[0]), _db(path[1] if len(path) == 2 else "0")
    else:
        if path and path != ["0"]:
            raise RedisURLError(
                "redis+cluster:// has database 0 only (Redis Cluster has no SELECT)"
            )
        service, db = "", 0
    return RedisLocation(
        "sentinel" if sentinel else "cluster", url, nodes, service, db,
        username=unquote(username) or None, password=unquote(password) or None,
        sentinel_password=query.get("sentinel_password") or None,
    )  # fmt: skip


def _node(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise RedisURLError("every host in the list needs a name or address")
    try:
        number = int(port) if port else default_port
    except ValueError:
        raise RedisURLError(f"{port!r} is not a port number") from None
    if not 0 < number < 65536:
        raise RedisURLError(f"{number} is not a port number")
    return host, number


def _db(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise RedisURLError(f"{text!r} is not a database number")
    return int(text)


def client_for(url: str, *, timeout: float) -> Redis:
    """A client for `url`, each command and connection attempt bounded by `timeout` seconds.
    A Cluster client is typed as Redis: it speaks the same commands for what Tessera sends
    (single keys, Lua scripts whose keys share a hash tag, pipelines, pub/sub, SCAN), which
    tests/redis_ha runs against a real cluster."""
    location = parse_redis_url(url)
    bounded: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if location.kind == "server":
        return Redis.from_url(url, **bounded)
    credentials: dict[str, Any] = {"username": location.username, "password": location.password}
    if location.kind == "sentinel":
        sentinel_kwargs = {**bounded, "password": location.sentinel_password}
        sentinel = Sentinel(list(location.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        # Each new connection asks the Sentinels where the primary is; a connection to a
        # demoted primary answers READONLY, which redis-py turns into a reconnection.
        primary = sentinel.master_for(location.service, db=location.db, **bounded, **credentials)  # type: ignore[no-untyped-call]
        return cast(Redis, primary)
    startup = [ClusterNode(host, port) for host, port in location.nodes]  # type: ignore[no-untyped-call]
    return cast(Redis, RedisCluster(startup_nodes=startup, **bounded, **credentials))


_clients: dict[str, Redis] = {}
_lock = threading.Lock()


def get_redis() -> Redis:
    """The process's client for settings.REDIS_URL: one connection pool per process (redis-py
    pools notice a fork and open their own connections in the child)."""
    url: str = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = client_for(url, timeout=settings.HEALTH_CHECK_TIMEOUT)
    return client


def is_cluster(url: str) -> bool:
    return _split(url).scheme == CLUSTER_SCHEME


def key_prefix(area: str) -> str:
    """`tessera:<area>:` for the keys of one area whose Lua scripts touch several keys at once.
    In a Redis Cluster every key of one script must live in one hash slot, so there the area
    is a hash tag, `tessera:{<area>}:` (Redis Cluster specification, "Hash tags"): the area's
    keys share one slot, and one node. On a single primary the names stay as they always
    were, so an upgrade keeps its counters and baselines."""
    return f"tessera:{{{area}}}:" if is_cluster(settings.REDIS_URL) else f"tessera:{area}:"


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker (and result backend) URL for a Redis URL of ours, with the transport
    options it needs: kombu spells a unix socket redis+socket:///path and a Sentinel set as
    `sentinel://host:port/db;sentinel://...` with the service as the `master_name` option.
    kombu has no Redis Cluster transport: a Cluster's REDIS_URL needs a CELERY_BROKER_URL of
    its own (refused here with that message)."""
    location = parse_redis_url(url)
    parts = _split(url)
    if location.kind == "server":
        if parts.scheme == "unix":
            return f"redis+socket://{parts.path}" + (f"?{parts.query}" if parts.query else ""), {}
        return url, {}
    if location.kind == "cluster":
        raise RedisURLError(
            "Celery's broker cannot use a Redis Cluster (kombu has no Cluster transport): set "
            "CELERY_BROKER_URL to a single Redis server or a redis+sentinel:// URL"
        )
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    hosts = ";".join(
        f"sentinel://{prefix}{_host(host)}:{port}/{location.db}" for host, port in location.nodes
    )
    options: dict[str, Any] = {"master_name": location.service}
    if location.sentinel_password:
        options["sentinel_kwargs"] = {"password": location.sentinel_password}
    return hosts, options


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class CacheConnectionFactory(ConnectionFactory):
    """django-redis's connections for CACHES: the same client as get_redis(), so Django's cache
    (used by libraries, not by Tessera's own code) follows Sentinel and Cluster too."""

    def connect(self, url: str) -> Redis:
        if url == settings.REDIS_URL:
            return get_redis()
        return client_for(url, timeout=settings.HEALTH_CHECK_TIMEOUT)

    def disconnect(self, connection: Redis) -> None:
        """The pool is the process's; closing it for one cache would close it for all."""
