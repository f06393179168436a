"""Session policy: how many sessions a user may hold, and how long one may last.

Three rules, each decided per user by the site's adapter
(:mod:`user_sessions.adapter`), all off by default:

* **the cap** (``max_sessions``): when a user signs in, their least recently
  active *other* sessions beyond the cap end, reason ``EVICTED``;
* **the idle timeout** (``idle_timeout``): a session whose last recorded
  activity is older ends at its next request, reason ``IDLE``;
* **the lifetime** (``lifetime``): a session signed in longer ago ends at its
  next request however active it is, reason ``LIFETIME``.

The timeouts are judged when the store loads a session, from the
``last_activity`` and sign-in time it has just read (the row, or the cached
entry): no query of their own. A session that ends there leaves the request
anonymous, as an expired session does, and its cookie is dropped. Every
ending goes through :func:`user_sessions.endings.end_sessions`, so history,
signals and push hear of it as of any other.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import SESSION_KEY
from django.db import connections, router, transaction
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from user_sessions.adapter import SessionsAdapter, get_adapter
from user_sessions.events import Reason

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

    from user_sessions.backends.db import SessionStore
    from user_sessions.models import AbstractSession

# Sessions ended per statement when a cap is lowered under many sessions.
EVICT_BATCH_SIZE = 500
# Set on a sign-in's request once its transaction holds the cap's lock.
LOCKED_ATTRIBUTE = "_user_sessions_cap_locked"


# -- idle timeout and lifetime ----------------------------------------------


def reason_to_end(
    adapter: SessionsAdapter,
    user: AbstractBaseUser,
    *,
    last_activity: datetime.datetime | None,
    signed_in_at: datetime.datetime | None,
    now: datetime.datetime,
) -> Reason | None:
    """``IDLE`` or ``LIFETIME`` if a session with these times is over at ``now``, else None.

    A session is over once ``now`` is *past* a limit (exactly at it, it
    lives). Past both, the limit reached first names the reason.
    """
    deadlines: list[tuple[datetime.datetime, Reason]] = []
    idle_timeout = adapter.idle_timeout(user)
    if idle_timeout and last_activity is not None:
        deadlines.append((last_activity + datetime.timedelta(seconds=idle_timeout), Reason.IDLE))
    lifetime = adapter.lifetime(user)
    if lifetime and signed_in_at is not None:
        deadlines.append((signed_in_at + datetime.timedelta(seconds=lifetime), Reason.LIFETIME))
    passed = [(deadline, reason) for deadline, reason in deadlines if now > deadline]
    if not passed:
        return None
    return min(passed, key=lambda item: item[0])[1]


def end_if_over(
    store: SessionStore,
    data: dict[str, Any],
    *,
    last_activity: datetime.datetime | None,
    now: datetime.datetime | None,
) -> bool:
    """End the session ``store`` has just loaded if the policy says it is over; True if so.

    Called by the stores with what they read. Costs no query unless the
    session ends, or a site's adapter looks at a user the read did not bring
    along (the database store with ``USER_SESSIONS_JOIN_USER`` brings it).
    """
    from user_sessions.backends.db import model_columns, owner_pk

    model = store.model
    if SESSION_KEY not in data or store.session_key is None or "user" not in model_columns(model):
        return False
    owner_id = owner_pk(model, data)
    if owner_id is None:
        return False
    user_model = model._meta.get_field("user").related_model
    user: Any = store.owner_row
    if user is None or user.pk != owner_id:
        # Read only if the adapter looks at it (the default one does not).
        user = SimpleLazyObject(lambda: user_model._default_manager.get(pk=owner_id))  # type: ignore[union-attr]
    try:
        reason = reason_to_end(
            get_adapter(),
            user,
            last_activity=last_activity,
            signed_in_at=store.signed_in_at,
            now=now or timezone.now(),
        )
    except user_model.DoesNotExist:  # type: ignore[union-attr]
        # The owner is gone; Django's auth treats the session as anonymous.
        return False
    if reason is None:
        return False
    from user_sessions.endings import end_sessions

    using = router.db_for_write(model)
    end_sessions(model._base_manager.using(using).filter(session_key=store.session_key), reason)
    return True


# -- the cap ----------------------------------------------------------------


def on_user_logged_in(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser | None, **kwargs: Any
) -> None:
    """Apply the user's cap once the new session is saved with its owner.

    Connected after ``user_sessions.signals.on_user_logged_in``, which saves it.
    """
    from user_sessions.backends.db import SessionStore, model_columns

    store = getattr(request, "session", None)
    if user is None or not isinstance(store, SessionStore) or store.session_key is None:
        return
    cap = get_adapter().max_sessions(user)
    if not cap:
        return
    model = store.model
    if not {"user", "last_activity"} <= model_columns(model):
        return
    evict_beyond_cap(
        model, user, store.session_key, cap, lock=not getattr(request, LOCKED_ATTRIBUTE, False)
    )


def on_user_logging_in(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser | None, **kwargs: Any
) -> None:
    """Under ``ATOMIC_REQUESTS``, take the cap's lock before the new session is saved.

    Connected before ``user_sessions.signals.on_user_logged_in``. Saving the
    session writes its owner, and MySQL/MariaDB then hold a shared lock on
    the user's row (the foreign key's check) until the request's transaction
    ends: two sign-ins each holding one and each asking for the cap's lock
    would deadlock. Taken first, the cap's lock makes the second sign-in wait
    instead. (Django's ``update_last_login`` does the same where the user
    model has ``last_login``.) Outside a transaction nothing is held between
    statements, and the cap's own step takes the lock.
    """
    from user_sessions.backends.db import SessionStore

    store = getattr(request, "session", None)
    if user is None or not isinstance(store, SessionStore):
        return
    using = router.db_for_write(store.model)
    if not connections[using].in_atomic_block or not get_adapter().max_sessions(user):
        return
    _lock_user(type(user), user.pk, using)
    # Held until the request's transaction ends: the cap's step need not ask again.
    setattr(request, LOCKED_ATTRIBUTE, True)


def evict_beyond_cap(
    model: type[AbstractSession],
    user: AbstractBaseUser,
    current_key: str,
    cap: int,
    *,
    lock: bool = True,
) -> int:
    """End ``user``'s least recently active sessions beyond ``cap``, sparing ``current_key``.

    Returns how many ended. Sign-ins of one user are taken one at a time (the
    user's row is locked for the step), so parallel sign-ins never leave more
    than ``cap`` sessions between them, and never end each other both: one
    that finds its own session already ended by another's cap leaves the rest
    alone. ``lock=False``: the caller's transaction holds the lock already.
    """
    from user_sessions.endings import end_sessions

    using = router.db_for_write(model)
    sessions = model._base_manager.using(using)
    with transaction.atomic(using=using):
        if lock:
            _lock_user(type(user), user.pk, using)
        # Django's PostgreSQL and MySQL connections read committed rows, so
        # this sees every session a sign-in that held the lock before made.
        keys = list(
            sessions.filter(user_id=user.pk, expire_date__gt=timezone.now())
            .order_by("-last_activity", "-created_at", "-pk")
            .values_list("session_key", flat=True)
        )
        if current_key not in keys:
            return 0
        beyond = [key for key in keys if key != current_key][cap - 1 :]
        ended = 0
        for start in range(0, len(beyond), EVICT_BATCH_SIZE):
            batch = beyond[start : start + EVICT_BATCH_SIZE]
            ended += end_sessions(sessions.filter(session_key__in=batch), Reason.EVICTED)
        return ended


def _lock_user(user_model: type[Any], pk: Any, using: str) -> None:
    """Hold the user's row until the transaction ends: sign-ins of one user queue here.

    ``FOR NO KEY UPDATE`` on PostgreSQL, so that inserting a session (whose
    foreign key takes a key-share lock on the user) is not held up by it and
    cannot deadlock with it. SQLite runs one writer at a time anyway.
    """
    connection = connections[using]
    if not connection.features.has_select_for_update:
        return
    no_key = connection.features.has_select_for_no_key_update
    rows = user_model._base_manager.using(using).filter(pk=pk)
    list(rows.select_for_update(no_key=no_key).values_list("pk", flat=True))


__all__ = [
    "end_if_over",
    "evict_beyond_cap",
    "on_user_logged_in",
    "on_user_logging_in",
    "reason_to_end",
]
