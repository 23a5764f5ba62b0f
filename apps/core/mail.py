"""Outgoing e-mail: every message rendered from its templates, sent by a Celery worker.

A message is named by its template stem under templates/mail/: `<name>.subject.txt` (one
line), `<name>.txt` (the plain-text body, always sent) and, when present, `<name>.html` (an
alternative part). `mail_send` renders the message in the caller (the request's context is at
hand; the worker needs no database row that a rolled-back transaction could take away) and
queues it once the caller's transaction commits, so a message never announces something that
did not happen. The worker delivers it through Django's e-mail backend (settings: IDP_SMTP_URL,
else files under the data dir) and retries with backoff (apps/core/tasks.py).
"""

from __future__ import annotations

import ssl
from dataclasses import asdict, dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import formataddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from django.core.validators import validate_email
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.functional import cached_property

from apps.core.commit import queue_after_commit

DELIVER_TASK = "apps.core.tasks.mail_deliver"
# RFC 5322 §2.1.1: a line is at most 998 characters; a subject longer than this is cut.
SUBJECT_MAX = 200
NAME_MAX = 200


@dataclass(frozen=True)
class Message:
    """One rendered message, as the task receives it (JSON)."""

    template: str  # the stem under templates/mail/, kept for logs and events
    to: str  # one recipient, "Name <address>" or a bare address
    subject: str
    text: str
    html: str = ""

    def email(self) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            subject=self.subject,
            body=self.text,
            from_email=settings.MAIL_FROM,
            to=[self.to],
            headers={"Auto-Submitted": "auto-generated"},  # RFC 3834 §5: no auto-replies
        )
        if self.html:
            message.attach_alternative(self.html, "text/html")
        return message


def recipient(address: str, name: str = "") -> str:
    """`Name <address>` with the name encoded as RFC 2047 requires, or the bare address.
    A name or address holding a line break (header injection, OWASP ASVS 5.2.3) or an
    address that is not one is refused with ValidationError before anything is queued."""
    if any(c in address + name for c in "\r\n\0"):
        raise ValidationError("Line breaks are not allowed in a name or an address.")
    invalid = ValidationError(f"“{address[:254]}” is not a valid email address.")
    try:
        validate_email(address)
        Address(addr_spec=address)
    except (ValidationError, ValueError, IndexError, HeaderParseError) as error:
        raise invalid from error
    name = " ".join(name.split())[:NAME_MAX]
    return formataddr((name, address)) if name else address


def mail_render(template: str, *, to: str, context: dict[str, Any]) -> Message:
    """The message `template` renders for `to` with `context` (and the site's name/issuer)."""
    context = {"site_name": settings.SITE_NAME, "issuer": settings.ISSUER, **context}
    rendered = render_to_string(f"mail/{template}.subject.txt", context)
    subject = " ".join(rendered.split())[:SUBJECT_MAX]  # one line, whatever the template held
    text = str(render_to_string(f"mail/{template}.txt", context))
    try:
        html = str(render_to_string(f"mail/{template}.html", context))
    except TemplateDoesNotExist:
        html = ""
    return Message(template=template, to=to, subject=subject, text=text, html=html)


def mail_send(template: str, *, to: str, context: dict[str, Any]) -> Message:
    """Render `template` for `to` and queue it for delivery when the current transaction
    commits (at once outside one). `to` comes from `recipient()`."""
    message = mail_render(template, to=to, context=context)
    # By name: apps/core/tasks.py imports this module (the worker's half of delivery).
    queue_after_commit(DELIVER_TASK, asdict(message))
    return message


class SMTPBackend(EmailBackend):
    """Django's SMTP backend with the server verified against settings.SMTP_CA_FILE when one
    is set (a private CA), else the system's trust store. Certificate and host-name checks stay
    on either way (RFC 7817 §3 for mail submission; OWASP ASVS 9.2.1): ssl.create_default_context
    sets CERT_REQUIRED and check_hostname. Without the CA file this is what Django does."""

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        cafile = settings.SMTP_CA_FILE
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996: no TLS 1.0/1.1
        return context
