#!/usr/bin/env bash
# The test suite starts real PostgreSQL, Redis (with Sentinel), ClickHouse and ZooKeeper servers,
# drives Chromium and runs npm OpenID client libraries on Node.js (Debian 12's nodejs 18 and npm 9
# will do), and puts nginx in front of Tessera for the mutual-TLS tests.
# Installs the Debian/Ubuntu packages that provide them when run as root; otherwise names them.
set -euo pipefail

missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
# tests/redis_ha: a primary, a replica and three Sentinels (Debian ships the binary apart)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
# ZooKeeper (Java) for the two-shard ClickHouse cluster's replication and ON CLUSTER DDL
# (tests/audit/test_cluster.py): Debian's ClickHouse 18.16 has no Keeper of its own.
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
# tests/mtls: the TLS-terminating proxy that forwards client certificates (RFC 8705)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "tessera: the tests need these system packages: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "tessera: installing system packages for the test servers: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/tessera-apt.log 2>&1 || {
  tail -n 20 /tmp/tessera-apt.log >&2
  echo "tessera: apt-get install failed (full log: /tmp/tessera-apt.log)" >&2
  exit 1
}
