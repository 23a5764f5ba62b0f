"""Redis in the shapes production runs it, started on free loopback ports for one test:
a primary with a replica watched by three Sentinels, and a three-node Redis Cluster.

Each waits for the state the tests rely on, polled, never slept for: the Sentinel set until
every Sentinel knows the replica and the two other Sentinels (what SENTINEL FAILOVER and a
quorum need), the cluster until every node says `cluster_state:ok`. Start-up times are kept
in `started_in` (seconds) for the tests to print.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.servers import Redis, Server, _binary, free_port, wait_for

SERVICE = "tessera"  # the Sentinel service (master) name
READY_TIMEOUT = 30.0


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher, Redis Cluster specification) is
    free too, and so at most 55535."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


class RedisNode(Redis):
    """A redis-server with extra arguments (replication, cluster mode); no persistence, and
    a replica's full sync starts at once (Redis 7 waits 5 s for more replicas by default)."""

    def __init__(self, base: Path, name: str, *extra: str) -> None:
        self.name = name
        super().__init__(base)
        self.extra = list(extra)

    def argv(self) -> list[str]:
        return [
            _binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--repl-diskless-sync-delay", "0", *self.extra,
        ]  # fmt: skip

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


class SentinelProcess(Server):
    """redis-sentinel (the Debian package's binary) watching SERVICE on `primary_port`, with
    a short down-after so that a killed primary is failed over in about a second."""

    def __init__(self, base: Path, name: str, primary_port: int) -> None:
        self.name = name
        super().__init__(base)
        self.config = self.dir / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )

    def argv(self) -> list[str]:
        return [_binary("redis-sentinel"), str(self.config)]

    def ready(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


def _state(client: redis.Redis) -> dict[str, object]:
    return dict(client.sentinel_master(SERVICE))


class SentinelSet:
    """A primary, one replica and three Sentinels (quorum 2)."""

    def __init__(self, base: Path) -> None:
        self.primary = RedisNode(base, "primary")
        following = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica = RedisNode(base, "replica", *following)
        self.sentinels = [
            SentinelProcess(base, f"sentinel-{n}", self.primary.port) for n in range(3)
        ]
        self.nodes = {node.port: node for node in (self.primary, self.replica)}
        self.started_in = 0.0

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    def start(self) -> None:
        began = time.monotonic()
        # The replica first follows the primary, so that the Sentinels' first INFO of the
        # primary already lists it (they ask again only every 10 s).
        for node in (self.primary, self.replica):
            node.spawn()
        for node in (self.primary, self.replica):
            node.wait_ready()
        wait_for(self._replica_linked, READY_TIMEOUT, "the replica did not sync")
        for sentinel in self.sentinels:
            sentinel.spawn()
        for sentinel in self.sentinels:
            sentinel.wait_ready()
        wait_for(self._sentinels_agree, READY_TIMEOUT, "the Sentinels did not find each other")
        self.started_in = time.monotonic() - began

    def _replica_linked(self) -> bool:
        info = self.replica.client().info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            state = _state(sentinel.client())
            if int(str(state["num-slaves"])) < 1 or int(str(state["num-other-sentinels"])) < 2:
                return False
        return True

    def primary_port(self) -> int:
        """The primary as the Sentinels announce it (every one of them agreeing)."""
        ports = {
            int(sentinel.client().sentinel_get_master_addr_by_name(SERVICE)[1])
            for sentinel in self.sentinels
            if sentinel.running
        }
        if len(ports) != 1:
            return 0
        return ports.pop()

    def current_primary(self) -> RedisNode:
        return self.nodes[self.primary_port()]

    def wait_for_new_primary(self, old_port: int, timeout: float = 30.0) -> RedisNode:
        """Until every Sentinel announces a primary other than `old_port`, that node says it
        is a primary, and the old one, if it runs, has been turned into its replica: the state
        a failover ends in. (Until that last step both say they are primaries, and clients
        still connected to the old one write there: Sentinel's documented window of lost
        writes, docs/redis-ha.md.)"""

        def promoted() -> bool:
            port = self.primary_port()
            if port in (0, old_port):
                return False
            if self.nodes[port].client().role()[0] != b"master":
                return False
            old = self.nodes[old_port]
            if not old.running:
                return True
            role = old.client().role()
            return role[0] == b"slave" and int(role[2]) == port

        wait_for(promoted, timeout, "no new primary was announced")
        return self.current_primary()

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()


class ClusterSet:
    """Three primaries, no replicas, slots spread by `redis-cli --cluster create`."""

    def __init__(self, base: Path) -> None:
        clustered = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
        self.nodes = [RedisNode(base, f"cluster-{n}", *clustered) for n in range(3)]
        for node in self.nodes:
            node.port = cluster_port()
        self.started_in = 0.0

    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        began = time.monotonic()
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_ready()
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for(self._ok, READY_TIMEOUT, "the cluster did not reach cluster_state:ok")
        self.started_in = time.monotonic() - began

    def _ok(self) -> bool:
        for node in self.nodes:
            info = node.client().execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def started(servers: SentinelSet | ClusterSet) -> SentinelSet | ClusterSet:
    try:
        servers.start()
    except (pytest.UsageError, AssertionError, subprocess.CalledProcessError):
        servers.stop()
        raise
    return servers


__all__ = ["SERVICE", "ClusterSet", "SentinelSet", "free_port", "started"]
