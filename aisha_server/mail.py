"""Outgoing system mail (invitations, password resets) through the SMTP settings.

Messages are queued and sent by a task owned by the app, so a request never waits on an SMTP
server and an SMTP outage never fails a request.  Without `SMTP_HOST` the message is written
to the log instead (development), links included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from aisha_server.config import Settings

log = logging.getLogger("aisha.mail")


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    to: str
    subject: str
    body: str


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue: asyncio.Queue[OutgoingMail] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def send(self, mail: OutgoingMail) -> None:
        self._queue.put_nowait(mail)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aisha-mailer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self) -> None:
        """Wait until every queued message has been handled (tests, shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            mail = await self._queue.get()
            try:
                await self._deliver(mail)
                self.sent += 1
            except Exception as exc:  # an SMTP failure must not kill the sender
                self.failed += 1
                log.error("mail to %s failed: %s", mail.to, exc)
            finally:
                self._queue.task_done()

    async def _deliver(self, mail: OutgoingMail) -> None:
        s = self._settings
        if not s.SMTP_HOST:
            log.info(
                "SMTP_HOST not set; mail to %s not sent:\n%s\n%s", mail.to, mail.subject, mail.body
            )
            return
        message = EmailMessage()
        message["From"] = s.SMTP_FROM
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        await aiosmtplib.send(
            message,
            hostname=s.SMTP_HOST,
            port=s.SMTP_PORT,
            username=s.SMTP_USER,
            password=s.SMTP_PASS,
            start_tls=s.SMTP_STARTTLS if s.SMTP_PORT != 465 else False,
            use_tls=s.SMTP_PORT == 465,
            timeout=15,
        )
