"""Sending through an SMTP server named by a URL (`smtp://`, `smtps://`, `?starttls=true`)."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib


class SmtpMailer:
    def __init__(self, url: str, sender: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError("AIQLEADS_SMTP_URL must start with smtp:// or smtps://")
        query = parse_qs(parts.query)
        self.host = parts.hostname or "localhost"
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = query.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
        self.sender = sender
        self.timeout = timeout

    async def send(self, to: str, subject: str, body: str, message_id: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        # One line, whatever it quotes: the email package refuses a header with any line
        # break str.splitlines() knows (U+2028, U+0085, VT ... as well as CR/LF), and the
        # mail would fail every attempt.
        message["Subject"] = " ".join(subject.splitlines())
        # The same id on every attempt, so a receiver can recognise a resend.
        message["Message-ID"] = f"<{message_id}@aiqleads>"
        message.set_content(body)
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            start_tls=self.starttls,
            timeout=self.timeout,
        )
