"""The demo outbox: mail the example site would have sent, read back from files.

The example sends mail with Django's file-based backend (into ``EXAMPLE_OUTBOX_DIR``),
so mail sent by any server process (runserver, or uvicorn's workers) lands in
one directory. Each file holds the messages of one mail connection, each
followed by a line of 79 dashes. This module reads the newest of them back
for the outbox page; a real site sends mail and has no such page.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

__all__ = ["OutboxMail", "read_outbox"]

# What Django's file-based backend writes after each message.
SEPARATOR = b"\n" + b"-" * 79 + b"\n"
_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
_BASE = '<base target="_top">'
_EPOCH = datetime.fromtimestamp(0, timezone.utc)


@dataclass(frozen=True)
class OutboxMail:
    """One message as the outbox page shows it."""

    subject: str
    to: str
    sent_at: datetime | None
    text: str
    html: str | None

    @property
    def frame_document(self) -> str | None:
        """The HTML part as an iframe's ``srcdoc``, its links opening in the page, not the frame."""
        if self.html is None:
            return None
        document, found = _HEAD.subn(lambda head: head.group(0) + _BASE, self.html, count=1)
        return document if found else _BASE + self.html


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None or body.get_content_subtype() != subtype:
        return None
    content = body.get_content()
    return content if isinstance(content, str) else None


def _mail(raw: bytes) -> OutboxMail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    date = message.get("Date")
    sent_at = email.utils.parsedate_to_datetime(str(date)) if date else None
    if sent_at is not None and sent_at.tzinfo is None:
        # Django writes UTC as "-0000", which Python reads as "zone unknown".
        sent_at = sent_at.replace(tzinfo=timezone.utc)
    return OutboxMail(
        subject=str(message.get("Subject", "")),
        to=str(message.get("To", "")),
        sent_at=sent_at,
        text=_part(message, "plain") or "",
        html=_part(message, "html"),
    )


def read_outbox(directory: Path, limit: int = 20) -> list[OutboxMail]:
    """The newest ``limit`` messages in ``directory``, newest first.

    A file's last message was written when the file was last modified, so
    the newest ``limit`` messages are all in the ``limit`` most recently
    modified files: only those are read.
    """
    try:
        files = [entry for entry in directory.iterdir() if entry.suffix == ".log"]
    except FileNotFoundError:
        return []
    stamped = []
    for file in files:
        try:
            stamped.append((file.stat().st_mtime_ns, file))
        except FileNotFoundError:
            continue
    newest_files = sorted(stamped, reverse=True)[:limit]
    dated: list[tuple[datetime, int, int, OutboxMail]] = []
    for modified, file in newest_files:
        # A message still being written has no separator after it yet.
        complete = file.read_bytes().split(SEPARATOR)[:-1]
        for index, chunk in enumerate(complete):
            mail = _mail(chunk)
            # The Date header counts whole seconds; within one, the file's
            # and the message's place in it order them.
            dated.append((mail.sent_at or _EPOCH, modified, index, mail))
    dated.sort(key=lambda entry: entry[:3], reverse=True)
    return [entry[3] for entry in dated[:limit]]
