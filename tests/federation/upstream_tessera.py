"""A second Tessera as the generic OpenID Connect upstream (issue 17): the fixture
`upstream_tessera` (a plugin of tests/conftest.py, so tests/federation and tests/e2e both see
it).

It runs `python -m idp.serve` — the embedded default: SQLite and the bundled Redis under its
own temp IDP_DATA_DIR, its own web server, Celery worker and beat — with none of the suite's
settings (IDP_*, DATABASE_URL, REDIS_URL, CELERY_*, CLICKHOUSE_URL), on a free port, as an
operator would run a separate identity provider. Clients and people are made in it as its
operator makes them, with `manage.py createclient` and `manage.py createuser` in the same
environment.

Its issuer is http://127.0.0.1:<port>, while the suite's Tessera (the live server) is
http://localhost:<port>: two hosts, so the browser keeps two cookie jars (cookies are scoped
by host, not port, RFC 6265 §8.5) and the callback from one to the other is a cross-site
navigation, as between two real providers.

Started once per session, only when a test asks for it (about 20 s on the suite's machine),
and stopped with its whole process tree at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.servers import TestServers, _die_with_parent, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120  # a cold start migrates and collects static files: ~20 s when quiet
MANAGE_TIMEOUT = 60
STOP_TIMEOUT = 60
# The suite's own settings (tests/servers.py): none of them reaches the second Tessera.
SUITE_SETTINGS = ("IDP_", "PORT", "DATABASE_URL", "REDIS_URL", "CELERY_", "CLICKHOUSE_URL")
DEFAULT_SLUG = "upstream"


def callback_uri(slug: str) -> str:
    """The suite's Tessera's callback for the provider `slug`: the redirect URI the upstream
    client is registered with (one per provider, RFC 9700 §4.4.2)."""
    return f"{settings.ISSUER}/login/federated/{slug}/callback"


@dataclass(frozen=True)
class UpstreamClient:
    """A confidential client registered in the upstream for one provider slug."""

    slug: str
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class UpstreamPerson:
    id: str
    email: str
    name: str
    password: str


@dataclass
class UpstreamTessera:
    """The running upstream: its issuer, the client for the provider "upstream" (consent
    asked, as from a third party), and ways to register more clients and people."""

    issuer: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]
    client: UpstreamClient | None = None
    people: list[UpstreamPerson] = field(default_factory=list)

    @property
    def client_id(self) -> str:
        assert self.client is not None
        return self.client.client_id

    @property
    def client_secret(self) -> str:
        assert self.client is not None
        return self.client.client_secret

    def manage(self, *args: str, stdin: str = "") -> str:
        """`manage.py <args>` in the upstream's environment; its standard output. A failure
        raises AssertionError with what the command said."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=MANAGE_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, (
            f"manage.py {args[0]} in the upstream Tessera failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def register_client(self, slug: str) -> UpstreamClient:
        """A confidential client whose one redirect URI is the suite's callback for `slug`;
        not first-party: the upstream asks each person's consent once, as a third party's
        provider does."""
        name = f"Tessera under test ({slug})"
        printed = json.loads(
            self.manage(
                "createclient", "--name", name, "--redirect-uri", callback_uri(slug), "--json"
            )
        )
        return UpstreamClient(
            slug=slug,
            client_id=printed["client_id"],
            client_secret=printed["client_secret"],
            redirect_uri=callback_uri(slug),
        )

    def create_person(
        self, email: str, name: str, *, password: str = "", email_verified: bool = True
    ) -> UpstreamPerson:
        """An account in the upstream with a password (and, by default, a verified address:
        what the upstream's ID token then says in email_verified).

        Each person gets a password of their own unless one is given: the upstream runs its
        default threat rules, and one password signing in to five accounts within the hour is
        password spraying to it (rule sprayed_password_success: a second factor required)."""
        password = password or f"upstream {secrets.token_urlsafe(12)}"
        args = ["createuser", "--email", email, "--name", name, "--password-stdin"]
        if email_verified:
            args.append("--email-verified")
        person = UpstreamPerson(
            id=self.manage(*args, stdin=password).strip(),
            email=email.lower(),
            name=name,
            password=password,
        )
        self.people.append(person)
        return person

    def stop(self) -> None:
        """SIGINT (Ctrl-C) to `idp.serve`, which stops its children itself; whatever of its
        tree is still alive after that is killed."""
        tree = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid, started in tree.items():
            if _start_time(pid) == started:  # the same process, still alive: not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: all(_start_time(pid) != started for pid, started in tree.items()),
            10,
            "the upstream Tessera's processes outlived it",
        )


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (field 3 on), or None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    """When the process started (proc(5) field 22, in clock ticks): with the pid, it names
    one process even if the pid is reused later. None when it is gone or a zombie."""
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else fields[19]


def descendants(root_pid: int) -> dict[int, str]:
    """Every live process whose ancestry leads to root_pid, with its start time."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            parents[int(entry.name)] = int(fields[1])
    found = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    found.discard(root_pid)
    return {pid: started for pid in found if (started := _start_time(pid)) is not None}


def readyz_status(issuer: str) -> int:
    try:
        with urllib.request.urlopen(f"{issuer}/readyz", timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def upstream_start(base: Path) -> UpstreamTessera:
    """Starts the second Tessera under `base` and waits until its /readyz answers 200."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    base.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(SUITE_SETTINGS)}
    env.update({"IDP_DATA_DIR": str(base / "data"), "PORT": str(port), "IDP_ISSUER": issuer})
    log = base / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "idp.serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    upstream = UpstreamTessera(issuer=issuer, env=env, log=log, process=process)
    try:
        wait_for(
            lambda: process.poll() is not None or readyz_status(issuer) == 200,
            STARTUP_TIMEOUT,
            f"the upstream Tessera did not become ready:\n{log.read_text()[-3000:]}",
        )
        assert process.poll() is None, (
            f"the upstream Tessera exited ({process.returncode}):\n{log.read_text()[-3000:]}"
        )
    except BaseException:
        upstream.stop()
        raise
    return upstream


@pytest.fixture(scope="session")
def upstream_tessera(servers: TestServers) -> Iterator[UpstreamTessera]:
    """A second Tessera on the embedded default, with a confidential client (consent asked)
    for the provider slug "upstream" whose redirect URI is this suite's callback for it."""
    started = time.monotonic()
    upstream = upstream_start(servers.base / "upstream-tessera")
    try:
        upstream.client = upstream.register_client(DEFAULT_SLUG)
        print(f"upstream Tessera at {upstream.issuer}: ready in {time.monotonic() - started:.1f}s")
        yield upstream
    finally:
        upstream.stop()
