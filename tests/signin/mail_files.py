"""Messages the file e-mail backend wrote under settings.MAIL_DIR (no SMTP configured), as
the Celery worker delivered them. A stand-in until the suite's SMTP server and its `mailbox`
fixture are on main; each test mails its own addresses, so tests do not read each other's."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from django.conf import settings

from tests.servers import wait_for

_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


def messages_to(address: str) -> list[EmailMessage]:
    found: list[EmailMessage] = []
    directory = settings.MAIL_DIR
    if not directory.exists():
        return found
    for path in sorted(directory.iterdir()):
        for chunk in path.read_bytes().split(_SEPARATOR):
            if not chunk.strip():
                continue
            message = email.message_from_bytes(chunk, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if address.lower() in str(message.get("To", "")).lower():
                found.append(message)
    return found


def wait_mail(address: str, count: int = 1, timeout: float = 30) -> list[EmailMessage]:
    """The messages to `address`, once at least `count` arrived (the worker delivers them)."""
    wait_for(lambda: len(messages_to(address)) >= count, timeout, f"no mail to {address}")
    return messages_to(address)


def text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def link(message: EmailMessage, path: str) -> str:
    """The first link in the plain-text body whose path starts with `path`."""
    found = re.search(r"https?://[^\s/]+(" + re.escape(path) + r"[^\s]*)", text(message))
    assert found, text(message)
    return found.group(1)
