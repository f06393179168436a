"""The one way a session ends: rows deleted, cached copies dropped, history kept, event sent.

Whatever ends a session (a logout, a sign-out from the device list, a password
change, expiry, the admin, a policy) calls :func:`end_sessions` or
:func:`end_session` with a :class:`~user_sessions.events.Reason`. Each batch
costs a SELECT of what the records and events need, one DELETE and, with
history on, one INSERT; once the transaction commits, the engine's cached
copies are buried and :func:`user_sessions.events.announce` sends
``session_ended``. A session without an owner (an anonymous visit) ends
without a record or an event: nobody could be told about it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import OperationalError, connections, models, router, transaction
from django.utils import timezone

from user_sessions.events import EndedBy, Reason, SessionEvent, announce, has_audience

if TYPE_CHECKING:
    from django.db.models import Q, QuerySet

    from user_sessions.models import AbstractSession

# Rows selected, deleted and recorded per round: bounded memory and short
# statements however many sessions end. Lowered where the database takes
# fewer parameters per statement, so each batch is one INSERT.
BATCH_SIZE = 500

#: How cached copies go: the engine's way (True), not at all (False), or this callable.
Forget = bool | Callable[[list[str]], None]

# What a record and an event need, each read where the model has it.
DESCRIBED_COLUMNS = (
    "user",
    "handle",
    "ip",
    "user_agent",
    "client_hints",
    "created_at",
    "last_activity",
)


@dataclass(frozen=True)
class Ending:
    """What is known of one session as it ends: enough for its record and its event."""

    session_key: str
    user_id: Any = None
    handle: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    client_hints: str | None = None
    created_at: datetime.datetime | None = None
    last_activity: datetime.datetime | None = None

    @classmethod
    def of(cls, session: models.Model) -> Ending | None:
        """From a loaded row; None when a column it needs was deferred (it would cost a query)."""
        deferred = session.get_deferred_fields()
        values: dict[str, Any] = {}
        for name in _described(type(session)):
            field = session._meta.get_field(name)
            attname = getattr(field, "attname", name)
            if attname in deferred:
                return None
            values["user_id" if name == "user" else name] = getattr(session, attname)
        return cls(session_key=session.pk, **values)


def _described(model: type[models.Model]) -> tuple[str, ...]:
    from user_sessions.backends.db import model_columns

    columns = model_columns(model)
    return tuple(name for name in DESCRIBED_COLUMNS if name in columns)


def heard() -> bool:
    """Whether an ending reaches anyone: history is kept, or someone hears ``session_ended``.

    When not, callers may end sessions the old way, without reading them first.
    """
    from user_sessions import history

    return history.enabled() or has_audience("ended")


def describe(sessions: QuerySet[Any]) -> list[Ending]:
    """What records and events need of the rows ``sessions`` matches (one SELECT)."""
    names = ("session_key", *_described(sessions.model))
    return [_ending(names, row) for row in sessions.values_list(*names)]


def batch_size(using: str) -> int:
    """Rows per round on ``using``: at most ``BATCH_SIZE``, and one INSERT of records each."""
    from user_sessions import history

    size = connections[using].ops.bulk_batch_size(history.recorded_fields(), [None] * BATCH_SIZE)
    return max(1, min(BATCH_SIZE, size))


def end_sessions(
    sessions: QuerySet[Any],
    reason: Reason,
    *,
    ended_by: EndedBy = EndedBy.SYSTEM,
    by_handle: str | None = None,
) -> int:
    """End every session ``sessions`` matches, in batches; returns how many ended.

    ``ended_by`` and ``by_handle`` say who did it: the user from one of their
    sessions (its handle), an admin or the site. A session another request
    ended meanwhile is not counted again.
    """
    return end_matching(sessions, reason, ended_by=ended_by, by_handle=by_handle)


def end_session(
    session: AbstractSession,
    reason: Reason,
    *,
    ended_by: EndedBy = EndedBy.SYSTEM,
    by_handle: str | None = None,
) -> bool:
    """End one session row already loaded (no SELECT for it); False if it had ended already."""
    model = type(session)
    using = session._state.db or router.db_for_write(model)
    ending = Ending.of(session)
    if ending is None:
        queryset = model._base_manager.using(using).filter(pk=session.pk)
        return bool(end_sessions(queryset, reason, ended_by=ended_by, by_handle=by_handle))
    ended = end_described(model, using, [ending], reason, ended_by=ended_by, by_handle=by_handle)
    return bool(ended)


def end_matching(
    sessions: QuerySet[Any],
    reason: Reason,
    *,
    ended_by: EndedBy = EndedBy.SYSTEM,
    by_handle: str | None = None,
    still: Q | None = None,
    forget: Forget = True,
    batch: int = BATCH_SIZE,
) -> int:
    """:func:`end_sessions` with the options housekeeping and the stores need.

    ``still``: a condition each row must meet again when it is deleted (expiry
    rechecked: a session saved since the SELECT lives on). ``forget``: False
    leaves cached copies alone (expired ones expire in the cache too); a
    callable drops them instead of the engine's ``forget`` (a store's own).
    ``batch``: rows per round at most.
    """
    model = sessions.model
    # Read where the rows will be deleted: a replica may lag behind.
    using: str = getattr(sessions, "_db", None) or router.db_for_write(model)
    if not heard():
        # Nobody would hear of these endings: a plain delete, without reading
        # the rows first (only their keys, when a cache holds copies).
        drop = _dropper(forget)
        doomed = sessions.using(using).filter(still) if still is not None else sessions.using(using)
        if not drop:
            _total, counts = models.QuerySet.delete(doomed)
            return int(counts.get(model._meta.label, 0))
        # Only the rows whose keys were read: one that matched after the read
        # would be deleted with no tombstone, and its cached copy would live on.
        keys = list(doomed.values_list("session_key", flat=True))
        ended = 0
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            rows = model._base_manager.using(using).filter(session_key__in=chunk)
            if still is not None:
                rows = rows.filter(still)
            _total, counts = models.QuerySet.delete(rows)
            ended += counts.get(model._meta.label, 0)
        if keys:
            forget_on_commit(drop, keys, using)
        return ended
    size = min(batch, batch_size(using))
    source = sessions.using(using)
    # A slice cannot be narrowed down batch by batch: it is read once.
    sliced = source.query.is_sliced
    total = 0
    while True:
        # The rows read are locked until their records are written: a request
        # ending some of the same sessions meanwhile waits, then finds them
        # gone, so no session is counted or recorded twice.
        def end_batch() -> tuple[int, int]:
            rows = describe(_locked(source if sliced else source[:size], using))
            ended = end_described(
                model,
                using,
                rows,
                reason,
                ended_by=ended_by,
                by_handle=by_handle,
                still=still,
                forget=forget,
            )
            return len(rows), ended

        read, ended = _retrying_deadlocks(using, end_batch)
        total += ended
        # No progress means the rest cannot be deleted either (``still``).
        if sliced or read < size or not ended:
            return total


#: Times a batch is tried again after the database chose it as a deadlock's victim.
DEADLOCK_RETRIES = 3


class _EveryDatabase(set[str]):
    """Holds every database alias, as Django's ATOMIC_REQUESTS asks a view's opt-out.

    A set, since Django's ``non_atomic_requests`` adds to the one it finds.
    """

    def __contains__(self, alias: object) -> bool:
        return True


class OwnTransactions:
    """A view mixin: the view runs outside ATOMIC_REQUESTS, so its endings commit on their own.

    Inside a request's transaction a batch the database chose as a deadlock's
    victim cannot be tried again (the request's other changes were rolled
    back with it), and MariaDB does choose one when several devices of a user
    sign out all others at once: the request would fail with a 500. Outside
    it, each batch is its own transaction and is retried.
    """

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)  # type: ignore[misc]
        # Which databases a site makes atomic is read when a request comes,
        # so the opt-out names them all (Django's non_atomic_requests takes
        # one alias, fixed when the module is imported).
        view._non_atomic_requests = _EveryDatabase()
        return view


def _retrying_deadlocks(using: str, work: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    """Run ``work`` in a transaction; again if a deadlock rolled it back.

    Only when the transaction is this call's own: inside a caller's, the
    caller decides (its other changes were rolled back too).
    """
    own = not connections[using].in_atomic_block
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            with transaction.atomic(using=using, savepoint=False):
                return work()
        except OperationalError as exc:
            if not own or attempt == DEADLOCK_RETRIES or not _deadlock(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _deadlock(exc: OperationalError) -> bool:
    """A deadlock or serialization failure: the whole transaction was rolled back."""
    cause = exc.__cause__
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if code in ("40P01", "40001"):  # PostgreSQL
        return True
    args: tuple[Any, ...] = getattr(cause, "args", ())
    return bool(args) and args[0] == 1213  # MySQL and MariaDB: ER_LOCK_DEADLOCK


def _locked(sessions: QuerySet[Any], using: str) -> QuerySet[Any]:
    """``sessions`` read ``FOR UPDATE`` where the database can (SQLite serialises writes)."""
    features = connections[using].features
    if not features.has_select_for_update:
        return sessions
    # Only the session rows where the database can say so, whatever a filter joins.
    of = ("self",) if features.has_select_for_update_of else ()
    locked: QuerySet[Any] = sessions.select_for_update(of=of)
    return locked


def _dropper(forget: Forget) -> Callable[[list[str]], None] | None:
    from user_sessions.models import _forget_cached

    if callable(forget):
        return forget
    return _forget_cached() if forget else None


def forget_on_commit(drop: Callable[[list[str]], None], keys: list[str], using: str) -> None:
    """Bury cached copies once the deletes commit (at once outside a transaction).

    Not before: a rolled-back ending would leave a tombstone over a session
    whose row lives on. Inside a transaction the copies are only discarded
    now (read anew from the row, as this transaction sees it), and a request
    that read the row before the commit cannot put it back over the
    tombstone the commit writes (``add``).
    """
    from user_sessions.models import _discard_cached

    if connections[using].in_atomic_block and (discard := _discard_cached()):
        discard(keys)
    transaction.on_commit(lambda: drop(keys), using=using)


def _ending(names: tuple[str, ...], row: tuple[Any, ...]) -> Ending:
    values = dict(zip(names, row, strict=True))
    if "user" in values:
        values["user_id"] = values.pop("user")
    return Ending(**values)


def end_described(
    model: type[models.Model],
    using: str,
    endings: Sequence[Ending],
    reason: Reason,
    *,
    ended_by: EndedBy = EndedBy.SYSTEM,
    by_handle: str | None = None,
    still: Q | None = None,
    forget: Forget = True,
) -> int:
    """End the sessions ``endings`` describe (the caller read them); returns how many ended.

    The store calls this with what its request already loaded, so a logout
    costs no SELECT.
    """
    from user_sessions import history

    if not endings:
        return 0
    at = timezone.now()
    keys = [ending.session_key for ending in endings]
    rows = model._base_manager.using(using).filter(session_key__in=keys)
    if still is not None:
        rows = rows.filter(still)
    # One transaction for the rows and their records, so no request sees a
    # session neither live nor in history; inside a caller's transaction,
    # part of that one (no savepoint).
    with transaction.atomic(using=using, savepoint=False):
        # Django's delete, so a site's delete signals still fire.
        _total, counts = models.QuerySet.delete(rows)
        ended = counts.get(model._meta.label, 0)
        if not ended:
            endings = []
        elif ended < len(endings):
            # Some were not deleted here (saved since, or ended by another
            # request): only the rows gone now were ended by this call.
            alive = set(
                model._base_manager.using(using)
                .filter(session_key__in=keys)
                .values_list("session_key", flat=True)
            )
            endings = [ending for ending in endings if ending.session_key not in alive]
        owned = [e for e in endings if e.user_id is not None and e.handle is not None]
        history.record(owned, reason, ended_by=ended_by, by_handle=by_handle, at=at, using=using)
    if drop := _dropper(forget):
        forget_on_commit(drop, keys, using)
    announce(
        (
            SessionEvent.ended(
                e.user_id,
                e.handle,
                reason,
                ended_by=ended_by,
                by_handle=by_handle,
                at=at,
            )
            for e in owned
            if e.handle is not None
        ),
        using=using,
    )
    return ended


__all__ = [
    "Ending",
    "OwnTransactions",
    "end_described",
    "end_matching",
    "end_session",
    "end_sessions",
    "forget_on_commit",
]
