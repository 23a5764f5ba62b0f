"""The suite's SMTP server (aiosmtpd), run as a subprocess by tests/servers.py SMTP:

    python -m tests.smtp_server PORT DIR

It listens on 127.0.0.1:PORT, refuses everything but EHLO/STARTTLS/QUIT before STARTTLS
(RFC 3207 §4: a client that cannot start TLS gets nothing), and accepts mail only after AUTH
PLAIN or LOGIN (RFC 4954) with user DIR/user and the password in DIR/password, read at each
AUTH so a test can make the credentials wrong and right again without a restart. Each message
is stored byte for byte, with an X-RcptTo header naming its envelope recipients prepended, in
the Maildir DIR/Maildir. SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import hmac
import mailbox
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class Handler:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.maildir = mailbox.Maildir(directory / "Maildir")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        header = ("X-RcptTo: " + ", ".join(envelope.rcpt_tos) + "\r\n").encode()
        self.maildir.add(header + content)  # tmp/ then a rename into new/: readers never see half
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = (self.dir / "user").read_bytes()
        password = (self.dir / "password").read_bytes()
        good = hmac.compare_digest(data.login, user) & hmac.compare_digest(data.password, password)
        return AuthResult(success=good, handled=False)


async def serve(port: int, directory: Path) -> None:
    handler = Handler(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="localhost",
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=handler.authenticate,
            decode_data=False,
        ),
        host="127.0.0.1",
        port=port,
    )
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    async with server:
        await stopped.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
