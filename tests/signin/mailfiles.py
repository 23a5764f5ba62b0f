"""Messages as the file e-mail backend wrote them (settings.MAIL_DIR, shared by the suite's
Celery worker): a stand-in until the suite's SMTP server and its `mailbox` fixture are here.
Django's filebased backend appends each message's bytes and a line of 79 dashes."""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from pathlib import Path

from django.conf import settings

SEPARATOR = b"\n" + b"-" * 79 + b"\n"


def _messages() -> list[EmailMessage]:
    folder = Path(settings.MAIL_DIR)
    found: list[EmailMessage] = []
    if not folder.is_dir():
        return found
    for file in sorted(folder.glob("*.log")):
        for chunk in file.read_bytes().split(SEPARATOR):
            if chunk.strip():
                message = email.message_from_bytes(chunk, policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                found.append(message)
    return found


def mails_to(address: str) -> list[EmailMessage]:
    return [m for m in _messages() if address in str(m["To"])]


def mail_wait(address: str, *, subject: str, after: int = 0, timeout: float = 60) -> EmailMessage:
    """The first message to `address` whose subject has `subject`, beyond the first `after`
    such messages (count them before acting), once the worker has delivered it."""
    deadline = time.monotonic() + timeout
    while True:
        matching = [m for m in mails_to(address) if subject in str(m["Subject"])]
        if len(matching) > after:
            return matching[after]
        if time.monotonic() > deadline:
            raise AssertionError(f"no message “{subject}” to {address} within {timeout} s")
        time.sleep(0.1)


def mail_count(address: str, *, subject: str) -> int:
    return len([m for m in mails_to(address) if subject in str(m["Subject"])])


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage, path: str) -> str:
    found = re.search(rf"https?://\S+{re.escape(path)}\S+", text_of(message))
    assert found, f"no {path} link in the message"
    return found.group(0)
