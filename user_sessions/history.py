"""History of ended sessions: written by :mod:`user_sessions.endings`, read by the widget and admin.

A record (:class:`~user_sessions.models.EndedSession`) is written only when a
session ends, in one INSERT per batch of endings, so ordinary requests cost
what they did. ``USER_SESSIONS_HISTORY_DAYS`` (default 90) says how long
records stay; ``clearsessions`` drops older ones in batches. At 0 nothing is
written, and ``clearsessions`` drops whatever was kept before.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import router
from django.utils import timezone

from user_sessions.client import anonymize_ip
from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from django.db.models import Field

    from user_sessions.endings import Ending
    from user_sessions.events import EndedBy, Reason
    from user_sessions.models import EndedSession

# Records deleted per statement when pruning: short statements, flat memory.
PRUNE_BATCH_SIZE = 1000


def enabled() -> bool:
    """Whether ended sessions are recorded (``USER_SESSIONS_HISTORY_DAYS`` > 0)."""
    return app_settings.HISTORY_DAYS > 0


def _model() -> type[EndedSession]:
    from user_sessions.models import EndedSession

    return EndedSession


def recorded_fields() -> Sequence[Field[Any, Any]]:
    """The columns one record writes (for the INSERT's batch size)."""
    return [field for field in _model()._meta.concrete_fields if not field.primary_key]


def record(
    endings: Sequence[Ending],
    reason: Reason,
    *,
    ended_by: EndedBy,
    by_handle: str | None,
    at: datetime.datetime,
    using: str,
) -> None:
    """Write one record per ended session, in one INSERT (``endings`` fits one)."""
    if not endings or not enabled():
        return
    model = _model()
    records = [
        model(
            user_id=ending.user_id,
            handle=ending.handle or "",
            # The privacy setting as it is now: it may have tightened since
            # the session's address was stored.
            ip=anonymize_ip(ending.ip),
            user_agent=ending.user_agent,
            client_hints=ending.client_hints,
            created_at=ending.created_at,
            last_activity=ending.last_activity,
            ended_at=at,
            reason=reason,
            ended_by=ended_by,
            by_handle=by_handle,
        )
        for ending in endings
    ]
    model._base_manager.using(router.db_for_write(model)).bulk_create(
        records, batch_size=len(records)
    )


def recent(user: Any, limit: int | None = None) -> list[EndedSession]:
    """The latest records of ``user`` within the retention: one query.

    ``limit`` defaults to ``USER_SESSIONS_HISTORY_WIDGET_LIMIT``.
    """
    limit = app_settings.HISTORY_WIDGET_LIMIT if limit is None else limit
    if not enabled() or limit <= 0 or not getattr(user, "is_authenticated", False):
        return []
    model = _model()
    cutoff = timezone.now() - datetime.timedelta(days=app_settings.HISTORY_DAYS)
    return list(
        model._default_manager.filter(user=user, ended_at__gte=cutoff).order_by("-ended_at", "-id")[
            :limit
        ]
    )


def prune(now: datetime.datetime | None = None) -> int:
    """Delete records older than the retention (all of them with history off); how many went."""
    model = _model()
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=app_settings.HISTORY_DAYS)
    using = router.db_for_write(model)
    manager = model._base_manager.using(using)
    total = 0
    while True:
        # Oldest first, by the ended_at index.
        ids = list(
            manager.filter(ended_at__lt=cutoff)
            .order_by("ended_at")
            .values_list("pk", flat=True)[:PRUNE_BATCH_SIZE]
        )
        if not ids:
            return total
        deleted: int = manager.filter(pk__in=ids)._raw_delete(using)
        total += deleted
        if len(ids) < PRUNE_BATCH_SIZE:
            return total


__all__ = ["enabled", "prune", "recent", "record"]
