"""End a user's other sessions the moment their password changes.

Django signs a session out once its auth hash no longer verifies, but only at
that session's next request. Until then its row stays, so right after the
owner changes a stolen password the device list still shows the thief as
signed in. Here, saving a user whose password was set (``set_password()``
then ``save()``: Django's password change, reset and admin forms, the
``changepassword`` command, a shell) deletes, from the table and any cache,
every session of that user whose auth hash no longer verifies, once the
change commits (at once outside a transaction).

The request that changes the password is spared until its response: Django's
``update_session_auth_hash()`` gives it the new hash after the save (and then
it stays, with its handle and sign-in time); a view that does not call it
leaves a session that would not authenticate, which is flushed then.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db import transaction
from django.utils.crypto import constant_time_compare

from user_sessions.events import EndedBy, Reason

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

# Keys decoded and deleted per statement: bounded, however many sessions.
BATCH_SIZE = 500


@dataclass
class _Binding:
    session: SessionBase
    # The user whose password this request changed, if it did.
    changed: Any = None


_request_session: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar(
    "user_sessions_request_session", default=None
)


def bind(session: SessionBase) -> None:
    """The session of the request being served (the middleware calls this)."""
    _request_session.set(_Binding(session))


def release() -> SessionBase | None:
    """End the request: flush its session if a password change left it unverifiable."""
    binding = _request_session.get()
    _request_session.set(None)
    if binding is None or binding.changed is None:
        return None
    session = binding.session
    if session.session_key is not None and not hash_verifies(
        binding.changed, session.get(HASH_SESSION_KEY)
    ):
        flush_as = getattr(session, "flush_as", None)
        if flush_as is not None:
            flush_as(Reason.PASSWORD_CHANGED)
        else:
            session.flush()
    return session


def hash_verifies(user: Any, session_hash: object) -> bool:
    """What ``django.contrib.auth.get_user()`` accepts, fallback secrets included."""
    if not isinstance(session_hash, str) or not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    return fallbacks is not None and any(
        constant_time_compare(session_hash, fallback) for fallback in fallbacks()
    )


def _decoder() -> SessionBase:
    # The engine's own decoding (its salt is the store's class name).
    store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore()
    return store


def _batches(keys: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def end_unverifiable_sessions(
    user: Any, keep: str | None = None, *, by_handle: str | None = None
) -> int:
    """Sign out every session of ``user`` whose auth hash no longer verifies.

    ``keep`` names a session key to leave alone; ``by_handle`` the session
    that changed the password, if one of the user's did. Returns how many ended.
    """
    from user_sessions.endings import end_sessions
    from user_sessions.models import get_session_model

    model = get_session_model()
    decoder = _decoder()
    rows = (
        model.objects.filter(user=user)
        .values_list("session_key", "session_data")
        .iterator(chunk_size=BATCH_SIZE)
    )
    stale = (
        key
        for key, data in rows
        if key != keep and not hash_verifies(user, decoder.decode(data).get(HASH_SESSION_KEY))
    )
    ended_by = EndedBy.USER if by_handle is not None else EndedBy.SYSTEM
    ended = 0
    for batch in _batches(stale):
        ended += end_sessions(
            model.objects.filter(session_key__in=batch),
            Reason.PASSWORD_CHANGED,
            ended_by=ended_by,
            by_handle=by_handle,
        )
    return ended


def on_user_saved(
    sender: Any,
    instance: Any,
    created: bool = False,
    raw: bool = False,
    update_fields: Iterable[str] | None = None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    if created:
        return
    # Any change, not only a password's: cached copies of the user's row
    # (cached_db with USER_SESSIONS_CACHE_USER) are read anew after it.
    user_changed = getattr(
        import_module(settings.SESSION_ENGINE).SessionStore, "user_changed", None
    )
    if user_changed is not None:
        user_changed(instance, using)
    if raw or not hasattr(instance, "get_session_auth_hash"):
        return
    if update_fields is not None and "password" not in update_fields:
        return
    # set_password() keeps the raw password here until save() has finished:
    # Django's own marker of a password change, cheaper than comparing the
    # stored hash on every save of a user.
    if getattr(instance, "_password", None) is None:
        return
    binding = _request_session.get()
    if binding is None or str(binding.session.get(SESSION_KEY)) != str(instance.pk):
        binding = None

    def end() -> None:
        keep = by_handle = None
        if binding is not None:
            # Its key now: update_session_auth_hash() may have re-keyed it since.
            keep = binding.session.session_key
            binding.changed = instance
            current_handle = getattr(binding.session, "current_handle", None)
            by_handle = current_handle() if current_handle is not None else None
        end_unverifiable_sessions(instance, keep=keep, by_handle=by_handle)

    # A change that is rolled back (ATOMIC_REQUESTS, a later step of the view
    # failing) changed no password, so it ends no session; the rows would come
    # back, but cached copies and the changing session would not.
    transaction.on_commit(end, using=using)
