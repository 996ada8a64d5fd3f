"""The email as sent: one RFC 5322 message (multipart/alternative, plain text and HTML) with the RFC 8058
one-click unsubscribe headers, and the two ways it leaves: Amazon SES v2 (`SendEmail` with the raw
message, so both ways carry exactly the same bytes) or, under `make dev`, an `.eml` file in the outbox.

boto3 comes with the Lambda runtime; it is imported on first use, not at cold start.
"""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Final, Protocol

from oneai.config import Settings
from oneai.errors import UnavailableError
from oneai.notifications.render import RenderedEmail
from oneai.observability import trace_calls

AWS_TIMEOUT_SECONDS: Final = 5
# CRLF, 7-bit safe (non-ASCII parts become quoted-printable or base64), and lines up to RFC 5322's 998
# characters: a long List-Unsubscribe URL must stay one plain `<url>`, not be folded into RFC 2047
# encoded-words, which mail clients do not read as a link.
MESSAGE_POLICY: Final = SMTP.clone(max_line_length=998, cte_type="7bit")


class MailNotConfiguredError(UnavailableError):
    default_message = "Email is not configured (ONEAI_MAIL_FROM)"


class SendError(Exception):
    """The email was not accepted; the claim is released and the record retried."""


def build_message(email: RenderedEmail, *, sender: str, to: str, unsubscribe_url: str | None) -> EmailMessage:
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = email.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or "oneai.local")
    if unsubscribe_url is not None:  # an account email (an invitation has nothing to unsubscribe from)
        # RFC 8058: a POST to this https URL with the body below unsubscribes, without a login.
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Hand the message over; returns its id at the provider. Raises SendError when not accepted."""
        ...


class SesMailer:
    """Amazon SES v2 `SendEmail` from the configured verified sender (and configuration set)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.mail_from:
            raise MailNotConfiguredError()
        self._sender = settings.mail_from
        self._configuration_set = settings.mail_configuration_set
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def sender(self) -> str:
        return self._sender

    def _ses(self) -> Any:
        with self._lock:
            if self._client is None:
                trace_calls("botocore")
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=AWS_TIMEOUT_SECONDS,
                    read_timeout=AWS_TIMEOUT_SECONDS,
                    retries={"max_attempts": 2, "mode": "standard"},
                )
                self._client = boto3.client("sesv2", config=config)
            return self._client

    def send(self, message: EmailMessage) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": [str(message["To"])]},
            "Content": {"Raw": {"Data": message.as_bytes()}},
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            answer = self._ses().send_email(**request)
        except (BotoCoreError, ClientError) as exc:
            raise SendError(type(exc).__name__) from exc
        return str(answer["MessageId"])


class OutboxMailer:
    """`make dev`: each email becomes `<outbox>/<time>-<id>.eml` (open it with any mail client)."""

    def __init__(self, settings: Settings, outbox: str) -> None:
        self._sender = settings.mail_from or "OneAI <no-reply@oneai.local>"
        self._outbox = Path(outbox)

    @property
    def sender(self) -> str:
        return self._sender

    def send(self, message: EmailMessage) -> str:
        self._outbox.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.eml"
        final = self._outbox / name
        partial = self._outbox / f".{name}.partial"
        partial.write_bytes(message.as_bytes())
        os.replace(partial, final)  # a reader never sees half a file
        return name


def mailer_for(settings: Settings) -> SesMailer | OutboxMailer:
    if settings.mail_outbox:
        return OutboxMailer(settings, settings.mail_outbox)
    return SesMailer(settings)
