"""Outgoing e-mail through the real worker to the suite's SMTP server (tests/smtp_server.py):
STARTTLS required (RFC 3207), AUTH (RFC 4954), server certificate verified, retries with
backoff, `mail.failed` once they are spent, and the file backend of the embedded default."""

from __future__ import annotations

import os
import smtplib
import ssl
import subprocess
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from apps.core.mail import Message, SMTPBackend, mail_render, mail_send, recipient
from apps.core.models import SecurityEvent
from apps.core.tasks import _mail_error, mail_deliver, mail_retry_countdown
from tests.servers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _address() -> str:
    return f"person-{uuid.uuid4().hex[:12]}@example.com"


def _context(**extra: Any) -> dict[str, Any]:
    return {
        "user": SimpleNamespace(get_short_name="Ada"),
        "headline": "Your password was changed",
        "when": timezone.now(),
        "account_url": f"{settings.ISSUER}/account/",
        **extra,
    }


def _queued(address: str, name: str = "") -> Any:
    """The notice for `address`, handed to the worker directly: (the task's AsyncResult)."""
    message = mail_render("security_notice", to=recipient(address, name), context=_context())
    return mail_deliver.apply_async((asdict(message),), ignore_result=False)  # its state is read


def _state_is(result: Any, state: str) -> bool:
    return bool(result.state == state)


@pytest.mark.django_db(transaction=True)
def test_message_is_delivered_by_the_worker_over_starttls_with_auth(mailbox) -> None:
    address = _address()

    mail_send("security_notice", to=recipient(address, "Ada Lovelace"), context=_context())

    message = mailbox.wait_for(to=address, subject_contains="Your password was changed")
    assert message.get_content_type() == "multipart/alternative"  # text and HTML, text first
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == settings.MAIL_FROM
    assert message["To"] == f"Ada Lovelace <{address}>"
    assert message["Subject"] == f"Your password was changed · {settings.SITE_NAME}"
    assert message["Auto-Submitted"] == "auto-generated"  # RFC 3834 §5
    assert "Hello Ada," in mailbox.text(message)
    assert "<p>Hello Ada,</p>" in mailbox.html(message)
    assert mailbox.link(message, "/account/") == f"{settings.ISSUER}/account/"


def test_the_server_refuses_mail_before_starttls_and_before_auth(servers) -> None:
    """What the delivery test relies on: the suite's server takes no mail in clear text and
    none without AUTH, so a delivered message went through both."""
    with smtplib.SMTP("localhost", servers.smtp.port, timeout=10) as plain:
        plain.ehlo()
        assert plain.has_extn("starttls")
        assert not plain.has_extn("auth")  # RFC 4954 §4: no AUTH offered before TLS
        code, _ = plain.mail("a@example.com")
        assert code == 530
    context = ssl.create_default_context(cafile=servers.smtp.ca_file)
    with smtplib.SMTP("localhost", servers.smtp.port, timeout=10) as client:
        client.starttls(context=context)
        client.ehlo()
        assert client.has_extn("auth")
        code, _ = client.mail("a@example.com")
        assert code == 530  # authentication required


def test_server_certificate_is_verified(servers) -> None:
    """Without the CA that signed it, the suite's server is refused (OWASP ASVS 9.2.1): the
    backend never talks to a server it cannot verify."""
    message = Message(template="t", to="a@example.com", subject="s", text="t").email()
    with override_settings(SMTP_CA_FILE=None), pytest.raises(ssl.SSLCertVerificationError):
        SMTPBackend().send_messages([message])
    context = SMTPBackend().ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.django_db(transaction=True)
def test_name_with_quotes_and_non_ascii_is_encoded(mailbox) -> None:
    address = _address()
    name = 'Zoë "Zed" O\'Brien, Jr. 日本'

    mail_send("security_notice", to=recipient(address, name), context=_context())

    message = mailbox.wait_for(to=address)
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, address)
    headers = message.as_bytes().split(b"\n\n", 1)[0]
    assert headers.isascii()  # RFC 2047 encoded words, not raw UTF-8 in a header


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("victim@example.com\r\nBcc: attacker@example.com", ""),
        ("victim@example.com\nBcc: attacker@example.com", ""),
        ("victim@example.com", "Eve\r\nBcc: attacker@example.com"),
        ("victim@example.com", "Eve\nSubject: other"),
        ("victim@example.com", "Eve\0"),
        ("not an address", ""),
        ("a@b@example.com", ""),
        ("", ""),
    ],
)
def test_header_injection_and_invalid_addresses_are_refused(address, name) -> None:
    """OWASP ASVS 5.2.3: no line break reaches a header; refused before anything is queued."""
    with pytest.raises(ValidationError):
        recipient(address, name)


def test_subject_is_one_line_whatever_the_context_holds() -> None:
    message = mail_render(
        "security_notice",
        to="a@example.com",
        context=_context(headline="Changed\r\nBcc: attacker@example.com"),
    )
    assert "\n" not in message.subject
    assert "\r" not in message.subject


def test_retry_backoff_doubles_with_jitter_and_is_capped() -> None:
    base = settings.MAIL_RETRY_BASE_SECONDS
    for retries in range(5):
        delay = base * 2**retries
        assert delay / 2 <= mail_retry_countdown(retries) <= delay
    assert 300 <= mail_retry_countdown(30) <= 600


@pytest.mark.django_db(transaction=True)
def test_refused_credentials_are_retried_and_the_message_delivered_once_fixed(
    servers, mailbox
) -> None:
    address = _address()
    password = servers.smtp.password
    servers.smtp.password = "not-the-password"
    try:
        result = _queued(address)
        wait_for(lambda: _state_is(result, "RETRY"), 30, "the worker did not retry")
    finally:
        servers.smtp.password = password

    message = mailbox.wait_for(to=address)
    assert message["Subject"].startswith("Your password was changed")
    wait_for(lambda: _state_is(result, "SUCCESS"), 30, "the delivery did not succeed")


@pytest.mark.django_db(transaction=True)
def test_server_down_is_retried_and_the_message_delivered_once_it_is_back(servers, mailbox) -> None:
    address = _address()
    servers.smtp.stop()
    try:
        result = _queued(address)
        wait_for(lambda: _state_is(result, "RETRY"), 30, "the worker did not retry")
    finally:
        servers.smtp.start()

    mailbox.wait_for(to=address)
    assert len([m for m in mailbox.messages() if m["X-RcptTo"] == address]) == 1


@pytest.mark.django_db(transaction=True)
def test_spent_retries_record_mail_failed_without_the_message(servers, celery_worker) -> None:
    """The last try (the task arrives as MAIL_RETRIES earlier tries leave it: waiting them
    out would take minutes) fails: `mail.failed` names the template and the SMTP reply, and
    holds nothing of the message — no address, subject or body."""
    address = _address()
    message = mail_render("security_notice", to=recipient(address), context=_context())
    password = servers.smtp.password
    servers.smtp.password = "not-the-password"
    try:
        result = mail_deliver.apply_async(
            [asdict(message)], retries=settings.MAIL_RETRIES, ignore_result=False
        )
        wait_for(lambda: _state_is(result, "FAILURE"), 30, "the last try did not fail")
    finally:
        servers.smtp.password = password

    def failed() -> list[SecurityEvent]:
        return list(SecurityEvent.objects.filter(event_type="mail.failed"))

    wait_for(failed, 30, "no mail.failed event")
    [event] = failed()
    assert not event.success
    assert event.error_code == "SMTPAuthenticationError"
    assert event.error_message.startswith("535 ")
    assert event.metadata == {"template": "security_notice", "tries": settings.MAIL_RETRIES + 1}
    recorded = str({f.name: getattr(event, f.name) for f in SecurityEvent._meta.fields})
    for secret in (address, message.subject, "Hello Ada", "/account/"):
        assert secret not in recorded


def test_embedded_default_writes_each_message_to_a_file(tmp_path) -> None:
    """No IDP_SMTP_URL: the file backend under the data dir, and `make run`'s line says so."""
    own = ("IDP_", "PORT", "DATABASE_URL", "REDIS_URL", "CELERY_", "CLICKHOUSE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env["IDP_DATA_DIR"] = str(tmp_path)
    script = (
        "from dataclasses import asdict\n"
        "from apps.core.mail import Message\n"
        "from apps.core.tasks import mail_deliver\n"
        "from idp.serve import mail_destination\n"
        "mail_deliver.apply(args=[asdict(Message(template='t', to='a@example.com', "
        "subject='File me', text='On disk.'))], throw=True)\n"
        "print(mail_destination())\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    destination = f"written as files to {tmp_path / 'mail'}/ (set IDP_SMTP_URL to send)"
    assert result.stdout.strip() == destination
    [written] = list((tmp_path / "mail").iterdir())
    content = written.read_text()
    assert "Subject: File me" in content
    assert "On disk." in content
    assert "To: a@example.com" in content


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (
            smtplib.SMTPRecipientsRefused({"bob@example.com": (550, b"no")}),
            "recipient refused: 550",
        ),
        (smtplib.SMTPDataError(554, b"5.7.1 <bob@example.com> no"), "554 5.7.1 <<address>> no"),
        (smtplib.SMTPServerDisconnected("Connection closed"), "Connection closed"),
    ],
)
def test_mail_failed_keeps_the_reply_but_no_address(error, kept) -> None:
    assert _mail_error(error) == kept


def test_the_queued_name_is_the_delivery_tasks() -> None:
    """mail_send queues the task by name (tasks.py imports mail.py): the two must agree."""
    from apps.core.mail import DELIVER_TASK

    assert mail_deliver.name == DELIVER_TASK
