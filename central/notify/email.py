"""Sending one notification e-mail over SMTP with the standard library (in a thread: smtplib blocks)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import anyio.to_thread


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str | None
    port: int
    username: str | None
    password: str | None
    sender: str
    starttls: bool
    timeout_s: float


class EmailSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.limiter = anyio.CapacityLimiter(4)

    async def send(self, to: list[str], subject: str, text: str, delivery_id: str) -> str | None:
        """None when the server accepted the message for every recipient, else the reason."""
        if self.settings.host is None:
            return "SMTP not configured: set FACEGATE_SMTP_HOST"
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{delivery_id}@facegate>"  # the same on every retry
        message["X-Facegate-Delivery-Id"] = delivery_id
        message.set_content(text)
        try:
            await anyio.to_thread.run_sync(self._send, message, limiter=self.limiter)
        except (smtplib.SMTPException, OSError) as err:
            return f"{type(err).__name__}: {str(err)[:200]}"
        return None

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.host is not None
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password)
            refused = smtp.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
