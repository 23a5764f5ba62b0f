"""Throwaway PostgreSQL, Redis, ClickHouse and SMTP servers for one pytest session.

Loaded with `-p tests.servers` so that it runs before pytest-django reads the settings: it
starts each server on a free loopback port in its own temp dir and points the environment
(DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, CLICKHOUSE_URL, IDP_SMTP_URL) at them. Nothing
here relies on a service that is already running or on a default port, so two runs at once do
not collide.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import glob
import ipaddress
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

STARTUP_TIMEOUT = 60
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """A server outlives no pytest process, even one killed with SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _binary(name: str, *extra_dirs: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs]))
    if found is None:
        raise pytest.UsageError(f"{name} not found: run `make test`, which installs it")
    return found


class Server:
    """One server process: started, probed until ready, stopped, restartable on the same port."""

    name = ""

    def __init__(self, base: Path) -> None:
        self.dir = base / self.name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.log = self.dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise TypeError("each server defines its command line")

    def ready(self) -> bool:
        raise TypeError("each server defines its readiness probe")

    def popen_user(self) -> str | None:
        return None

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.popen_user(),
                preexec_fn=_die_with_parent,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.ready():
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise pytest.UsageError(f"{self.name} did not start:\n{tail}")
            time.sleep(0.05)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Postgres(Server):
    name = "postgres"
    user = "tessera"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)
        self.bindir = Path(versions[-1]) if versions else Path(_binary("initdb")).parent
        self.data = self.dir / "data"
        # PostgreSQL refuses to run as root; under root it runs as the package's postgres user.
        self.os_user = "postgres" if os.geteuid() == 0 else None
        if self.os_user:
            account = pwd.getpwnam(self.os_user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
             "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=self.os_user,
        )  # fmt: skip

    def popen_user(self) -> str | None:
        return self.os_user

    def argv(self) -> list[str]:
        # Durability is traded for speed: this cluster lives for one test run.
        return [
            str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def ready(self) -> bool:
        probe = subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return probe.returncode == 0

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:  # SIGINT = fast shutdown
        super().stop(sig)

    def url(self, database: str = "tessera") -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


class Redis(Server):
    name = "redis"

    def argv(self) -> list[str]:
        # `save` makes a SIGTERM shutdown write its data, so a restart keeps what was there.
        return [
            _binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--save", "3600 1", "--appendonly", "no",
            "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


class ClickHouse(Server):
    name = "clickhouse"

    def __init__(self, base: Path, extra_config: str = "") -> None:
        super().__init__(base)
        self.http_port = free_port()
        self.config = self.dir / "config.xml"
        self.config.write_text(
            f"""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{self.dir}/clickhouse.log</log>
    <errorlog>{self.dir}/clickhouse.err.log</errorlog></logger>
  <tcp_port>{self.port}</tcp_port>
  <http_port>{self.http_port}</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{self.dir}/data/</path>
  <tmp_path>{self.dir}/tmp/</tmp_path>
  <user_files_path>{self.dir}/user_files/</user_files_path>
  <format_schema_path>{self.dir}/format_schemas/</format_schema_path>
  <users_config>{self.dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <timezone>UTC</timezone>
{extra_config}</yandex>
"""
        )
        (self.dir / "users.xml").write_text(
            """<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"""
        )

    def argv(self) -> list[str]:
        return [_binary("clickhouse-server", "/usr/sbin"), f"--config-file={self.config}"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def url(self) -> str:
        return f"clickhouse://default:@127.0.0.1:{self.port}/default"


class ZooKeeper(Server):
    """Debian's ZooKeeper (Java), standalone, for ClickHouse's replication and ON CLUSTER DDL."""

    name = "zookeeper"

    def argv(self) -> list[str]:
        jar = "/usr/share/java/zookeeper.jar"  # its manifest names the jars it needs
        if not Path(jar).exists():
            raise pytest.UsageError("zookeeper not found: run `make test`, which installs it")
        # A small heap and the quick JIT: a throwaway server that starts in about a second.
        return [
            _binary("java"), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false", "-Dzookeeper.4lw.commands.whitelist=srvr",
            "-cp", jar, "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(self.port), str(self.dir / "data"),
        ]  # fmt: skip

    def ready(self) -> bool:
        # `srvr` answers "not currently serving requests" until it serves (`ruok` says imok
        # before: ClickHouse's handshake then failed, and 18.16 crashed on its next DDL).
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"srvr")
                return sock.recv(64).startswith(b"Zookeeper version")
        except OSError:
            return False


class ClickHouseClusterNode(ClickHouse):
    def ready(self) -> bool:
        """Answering, and its ZooKeeper session open (a query of system.zookeeper)."""
        query = "SELECT+count()+FROM+system.zookeeper+WHERE+path%3D%27%2F%27"
        try:
            url = f"http://127.0.0.1:{self.http_port}/?query={query}"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False


class ClickHouseCluster:
    """Two ClickHouse servers, one shard each, named by `remote_servers` as the cluster NAME,
    with a ZooKeeper for ReplicatedMergeTree and ON CLUSTER DDL. Each server has the macros
    {shard} (01, 02) and {replica} (r1): one replica per shard."""

    NAME = "tessera_test"

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True)
        self.zookeeper = ZooKeeper(base)
        (base / "shard1").mkdir()
        (base / "shard2").mkdir()
        ports = [(free_port(), free_port()) for _ in range(2)]
        shards = "".join(
            "<shard><internal_replication>true</internal_replication><replica>"
            f"<host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
            for tcp, _ in ports
        )
        self.nodes: list[ClickHouse] = []
        for number, (tcp, interserver) in enumerate(ports, start=1):
            extra = f"""  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{interserver}</interserver_http_port>
  <zookeeper><node><host>127.0.0.1</host><port>{self.zookeeper.port}</port></node></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <remote_servers><{self.NAME}>{shards}</{self.NAME}></remote_servers>
  <macros><shard>{number:02d}</shard><replica>r1</replica></macros>
"""
            node = ClickHouseClusterNode(base / f"shard{number}", extra)
            # The port remote_servers names for this shard, chosen before the node existed.
            node.config.write_text(
                node.config.read_text().replace(
                    f"<tcp_port>{node.port}</tcp_port>", f"<tcp_port>{tcp}</tcp_port>"
                )
            )
            node.port = tcp
            self.nodes.append(node)
        self.all: list[Server] = [self.zookeeper, *self.nodes]
        self.started_in = 0.0  # seconds, set by whoever starts it

    def start(self) -> None:
        """ZooKeeper first: ClickHouse 18.16 connects to it at startup, and a server that found
        it not yet listening crashed (SIGSEGV) at its first ON CLUSTER statement."""
        self.zookeeper.start()
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_ready()

    def stop(self) -> None:
        for server in reversed(self.all):
            server.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class SMTP(Server):
    """aiosmtpd (tests/smtp_server.py): STARTTLS required, with a certificate for localhost
    from a CA made for this run (IDP_SMTP_CA_FILE), AUTH PLAIN/LOGIN with a generated password,
    every message kept in the Maildir `maildir`."""

    name = "smtp"
    user = "tessera@mail.test"  # an @ and a password with URL delimiters: percent-decoding runs

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.ca_file = self.dir / "ca.pem"
        self.maildir = self.dir / "Maildir"
        self.password = secrets.token_urlsafe(18) + ":/@%?#"
        (self.dir / "user").write_text(self.user)
        _write_tls_files(self.dir, self.ca_file)

    @property
    def password(self) -> str:
        return (self.dir / "password").read_text()

    @password.setter
    def password(self, value: str) -> None:
        """Read by the server at each AUTH: a test can make the suite's credentials wrong."""
        (self.dir / "password").write_text(value)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "tests.smtp_server", str(self.port), str(self.dir)]

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )  # fmt: skip

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"220")
        except OSError:
            return False

    def url(self) -> str:
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"smtp://{credentials}@localhost:{self.port}"


def _write_tls_files(directory: Path, ca_file: Path) -> None:
    """A CA and a certificate it signs for localhost / 127.0.0.1 (key.pem, cert.pem), both
    with the extensions Python's strict verification expects (RFC 5280 §4.2)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tessera test mail CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class TestServers:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tessera-test-"))
        self.base.chmod(0o755)  # the postgres user must reach its own folder inside
        self.postgres = Postgres(self.base)
        self.redis = Redis(self.base)
        self.clickhouse = ClickHouse(self.base)
        self.smtp = SMTP(self.base)
        self.all: list[Server] = [self.postgres, self.redis, self.clickhouse, self.smtp]
        # The live server's port is fixed now: the issuer (read once, at settings import)
        # must be the URL relying parties talk to.
        self.web_port = free_port()

    def start(self) -> None:
        for server in self.all:  # spawn all, then wait: they start in parallel
            server.spawn()
        for server in self.all:
            server.wait_ready()

    def stop(self) -> None:
        for server in self.all:
            server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def environ(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.postgres.url(),
            "REDIS_URL": self.redis.url(0),
            # The broker gets its own Redis database so flushing app state between tests
            # never drops a queued task or kombu's routing tables.
            "CELERY_BROKER_URL": self.redis.url(1),
            "CLICKHOUSE_URL": self.clickhouse.url(),
            "IDP_DATA_DIR": str(self.base / "data"),
            "IDP_ISSUER": f"http://localhost:{self.web_port}",
            "IDP_SECRET_KEY": secrets.token_urlsafe(64),
            # Shipping runs when a test runs it: no test is disturbed by one that the outbox
            # threshold starts (the test of that trigger lowers it).
            "IDP_AUDIT_SHIP_THRESHOLD": "1000000",
            # Every test client is on loopback: rate limits would turn an unrelated test's
            # burst (300 tokens in tests/core/test_journal.py) into 429s. The rate-limit tests
            # (tests/ratelimit/) clear this list and run the default rules; failed-attempt
            # lockout is not skipped by the allow list and runs everywhere.
            "IDP_RATELIMIT_ALLOW": "127.0.0.0/8,::1/128",
            # Playwright's sync API runs an event loop in the test thread; Django's ORM guard
            # would otherwise refuse the test's own database calls made beside it.
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
            # Mail goes to the suite's SMTP server (tests/smtp_server.py), verified against
            # the CA made for this run; retries come back in seconds, not minutes.
            "IDP_SMTP_URL": self.smtp.url(),
            "IDP_SMTP_CA_FILE": str(self.smtp.ca_file),
            "IDP_MAIL_RETRY_BASE_SECONDS": "1",
            # Upstream providers in tests (a second Tessera, the GitHub and Google stand-ins)
            # listen on loopback over plain HTTP.
            "IDP_FEDERATION_ALLOW_LOOPBACK_HTTP": "true",
        }


SERVERS = pytest.StashKey[TestServers]()
_OWN_SETTINGS = ("IDP_", "PORT", "DATABASE_URL", "REDIS_URL", "CELERY_", "CLICKHOUSE_URL")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    for name in list(os.environ):  # the suite's settings come from here alone
        if name.startswith(_OWN_SETTINGS):
            del os.environ[name]
    servers = TestServers()

    def stop() -> None:
        # The suite is over: the in-process threads that follow Redis (the cache channel)
        # would log its loss to a stream pytest has already closed ("--- Logging error ---"
        # and a traceback after the summary, in every run).
        logging.disable(logging.CRITICAL)
        servers.stop()

    early_config.add_cleanup(stop)
    servers.start()
    os.environ.update(servers.environ())
    early_config.stash[SERVERS] = servers


def wait_for(condition: Callable[[], object], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout}s)")
        time.sleep(0.05)


@contextlib.contextmanager
def production_web_server(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The production command (`python -m idp.web`: granian) with `env` on a free port, once
    its /healthz answers: (process, base URL). Stopped with SIGTERM afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "idp.web"],
        cwd=ROOT, env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthz_answers(url), 60, f"{url} did not start")
        yield process, url
    finally:
        process.terminate()
        process.wait(60)


def _healthz_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - ours
            return bool(response.status == 200)
    except OSError:
        return False
