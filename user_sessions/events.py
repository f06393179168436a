"""What happened to a session, in the one shape history, alerts, push and the API share.

Whatever starts or ends a session describes it as a :class:`SessionEvent` and
hands the events to :func:`announce`. Once the transaction commits, that sends
:data:`session_started` / :data:`session_ended` for each event and passes the
whole batch to every registered publisher (push, for one). Events name a
session by its handle only: never its key, never its data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise

logger = logging.getLogger(__name__)

#: Sent after commit for each session that started.
#: Arguments: ``sender`` (the session model) and ``event`` (a :class:`SessionEvent`).
session_started = Signal()

#: Sent after commit for each session that ended, whatever ended it.
#: Arguments: ``sender`` (the session model) and ``event`` (a :class:`SessionEvent`
#: whose ``reason`` says why and ``ended_by`` / ``by_handle`` say by whom).
session_ended = Signal()


class Reason(str, Enum):
    """Why a session ended. Stored in history as the value; :attr:`label` is for people."""

    LOGOUT = "logout"
    SIGNED_OUT_ELSEWHERE = "signed_out_elsewhere"
    SIGNED_OUT_ALL_OTHERS = "signed_out_all_others"
    PASSWORD_CHANGED = "password_changed"
    EXPIRED = "expired"
    IDLE = "idle"
    LIFETIME = "lifetime"
    EVICTED = "evicted"
    REPORTED = "reported"
    ADMIN = "admin"

    @property
    def label(self) -> StrOrPromise:
        return _REASON_LABELS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, StrOrPromise]]:
        """For a model field's ``choices``."""
        return [(member.value, member.label) for member in cls]


_REASON_LABELS: dict[Reason, StrOrPromise] = {
    Reason.LOGOUT: _("Signed out"),
    Reason.SIGNED_OUT_ELSEWHERE: _("Signed out from another device"),
    Reason.SIGNED_OUT_ALL_OTHERS: _("Signed out with “sign out all others”"),
    Reason.PASSWORD_CHANGED: _("Password changed"),
    # Its own context: the admin's "Expired" filter is a plural adjective in
    # several languages, which reads wrongly as "Expired, 2 hours ago".
    Reason.EXPIRED: pgettext_lazy("why a session ended", "Expired"),
    Reason.IDLE: _("Idle for too long"),
    Reason.LIFETIME: _("Reached its maximum age"),
    Reason.EVICTED: _("Too many sessions: the least recently used was ended"),
    Reason.REPORTED: _("Reported with “This wasn't me”"),
    Reason.ADMIN: _("Ended by an administrator"),
}


class EndedBy(str, Enum):
    """Who ended a session.

    ``USER``: the account's owner, from one of their sessions (``by_handle``
    names it) or from a link mailed to them (``by_handle`` is ``None``).
    """

    USER = "user"
    ADMIN = "admin"
    SYSTEM = "system"

    @property
    def label(self) -> StrOrPromise:
        return _ENDED_BY_LABELS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, StrOrPromise]]:
        return [(member.value, member.label) for member in cls]


_ENDED_BY_LABELS: dict[EndedBy, StrOrPromise] = {
    EndedBy.USER: _("You"),
    EndedBy.ADMIN: _("An administrator"),
    EndedBy.SYSTEM: _("The site"),
}


@dataclass(frozen=True)
class SessionEvent:
    """One session started or ended.

    ``user_id`` is the owner's primary key as a string (so UUID and string keys
    travel the same way). ``reason``, ``ended_by`` and ``by_handle`` are set for
    ``"ended"`` events only.
    """

    kind: Literal["started", "ended"]
    user_id: str
    handle: str
    at: datetime = field(default_factory=timezone.now)
    reason: Reason | None = None
    ended_by: EndedBy | None = None
    by_handle: str | None = None

    @classmethod
    def started(cls, user_id: Any, handle: str) -> SessionEvent:
        return cls(kind="started", user_id=str(user_id), handle=handle)

    @classmethod
    def ended(
        cls,
        user_id: Any,
        handle: str,
        reason: Reason,
        *,
        ended_by: EndedBy | None = None,
        by_handle: str | None = None,
        at: datetime | None = None,
    ) -> SessionEvent:
        return cls(
            kind="ended",
            user_id=str(user_id),
            handle=handle,
            at=at or timezone.now(),
            reason=reason,
            ended_by=ended_by or EndedBy.SYSTEM,
            by_handle=by_handle,
        )

    def as_dict(self) -> dict[str, str | None]:
        """JSON-safe form, as brokers and the API carry it."""
        return {
            "kind": self.kind,
            "user_id": self.user_id,
            "handle": self.handle,
            "at": self.at.isoformat(),
            "reason": self.reason.value if self.reason else None,
            "ended_by": self.ended_by.value if self.ended_by else None,
            "by_handle": self.by_handle,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionEvent:
        """Inverse of :meth:`as_dict`; raises ``ValueError``/``KeyError`` on bad input."""
        kind = data["kind"]
        if kind not in ("started", "ended"):
            raise ValueError(f"unknown event kind {kind!r}")
        return cls(
            kind=kind,
            user_id=str(data["user_id"]),
            handle=str(data["handle"]),
            at=datetime.fromisoformat(data["at"]),
            reason=Reason(data["reason"]) if data.get("reason") else None,
            ended_by=EndedBy(data["ended_by"]) if data.get("ended_by") else None,
            by_handle=data.get("by_handle"),
        )


Publisher = Callable[[Sequence[SessionEvent]], None]
_publishers: dict[str, Publisher] = {}


def add_publisher(name: str, publisher: Publisher) -> None:
    """Register ``publisher`` (called after commit with each batch); same name replaces."""
    _publishers[name] = publisher


def remove_publisher(name: str) -> None:
    _publishers.pop(name, None)


def has_audience(kind: Literal["started", "ended"]) -> bool:
    """Whether announcing ``kind`` events reaches anyone: a receiver or a publisher.

    Lets a caller spare the query that would only build the event.
    """
    from user_sessions.models import get_session_model

    signal = session_started if kind == "started" else session_ended
    return bool(_publishers) or signal.has_listeners(get_session_model())


def announce(events: Iterable[SessionEvent], *, using: str | None = None) -> None:
    """Send the signals and publish ``events`` once the current transaction commits.

    Outside a transaction that is now. A receiver or publisher that raises is
    logged and never undoes the change or stops the others.
    """
    batch = list(events)
    if batch:
        transaction.on_commit(lambda: _deliver(batch), using=using)


def _deliver(batch: list[SessionEvent]) -> None:
    from user_sessions.models import get_session_model

    model = get_session_model()
    for event in batch:
        signal = session_started if event.kind == "started" else session_ended
        for receiver, result in signal.send_robust(sender=model, event=event):
            if isinstance(result, Exception):
                logger.error("%s receiver %r failed", event.kind, receiver, exc_info=result)
    for name, publisher in list(_publishers.items()):
        try:
            publisher(batch)
        except Exception:
            logger.exception("publishing session events through %r failed", name)


__all__ = [
    "EndedBy",
    "Reason",
    "SessionEvent",
    "add_publisher",
    "announce",
    "has_audience",
    "remove_publisher",
    "session_ended",
    "session_started",
]
