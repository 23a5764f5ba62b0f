"""A real nginx (the Debian package) terminating TLS in front of a Tessera web server, as
docs/mtls.md configures it: it asks for a client certificate without judging it
(`ssl_verify_client optional_no_ca`; Tessera checks it against each client's registration)
and forwards it URL-encoded in X-Client-Cert. It connects to Tessera from its own loopback
address (proxy_bind), the one Tessera trusts as a proxy, so a test talking to Tessera directly
from 127.0.0.1 is not trusted."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import _die_with_parent, free_port, wait_for

PROXY_ADDRESS = "127.0.0.2"  # nginx's side of the connection to Tessera (IDP_TRUSTED_PROXIES)

CONFIG = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind {proxy_address};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


@contextmanager
def nginx(prefix: Path, *, upstream: int, cert: Path, key: Path) -> Iterator[str]:
    """nginx on a free port proxying to 127.0.0.1:`upstream`; yields its https base URL."""
    binary = nginx_binary()
    assert binary, "nginx is missing: scripts/ensure-system-packages.sh installs it"
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(
        CONFIG.format(
            prefix=prefix, port=port, cert=cert, key=key, upstream=upstream,
            proxy_address=PROXY_ADDRESS,
        )
    )  # fmt: skip
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=(prefix / "stderr.log").open("wb"),
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    try:
        wait_for(
            lambda: process.poll() is not None or _accepts(port),
            30,
            f"nginx did not start: {prefix / 'stderr.log'}",
        )
        assert process.poll() is None, (prefix / "stderr.log").read_text()
        yield f"https://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful shutdown
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
