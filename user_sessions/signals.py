"""Signals a site can listen to, and the package's own receivers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import router, transaction
from django.db.models.signals import post_save, pre_delete
from django.dispatch import Signal

if TYPE_CHECKING:
    from django.http import HttpRequest

#: Sent when a user signs in and so starts a new session.
#: Arguments: ``sender`` (the Session model), ``session`` (the ``Session`` row,
#: owner already set), ``request``, ``user``, ``device`` (e.g. "Chrome on
#: Windows" or ``None``) and ``location`` (e.g. "Zwolle, Netherlands" or ``None``).
session_created = Signal()


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    from user_sessions.backends.db import SessionStore
    from user_sessions.devices import location_label
    from user_sessions.events import SessionEvent, announce, has_audience
    from user_sessions.models import get_session_model

    store = getattr(request, "session", None)
    if not isinstance(store, SessionStore) or store.session_key is None:
        return
    # Write the owner now rather than at the end of the request, so the new
    # session shows up in lists (and for receivers) straight away.
    store.save()
    model = get_session_model()
    rows = model.objects.filter(session_key=store.session_key)
    if not session_created.has_listeners(model):
        # Nobody asked for the row: spare the device and location labels, and
        # the query too unless someone hears of sessions starting.
        if not has_audience("started"):
            return
        handle = rows.values_list("handle", flat=True).first()
        if handle is not None:
            announce([SessionEvent.started(user.pk, handle)], using=router.db_for_write(model))
        return
    session = rows.first()
    if session is None:
        return
    announce([SessionEvent.started(user.pk, session.handle)], using=router.db_for_write(model))
    session_created.send(
        sender=model,
        session=session,
        request=request,
        user=user,
        device=session.device,
        location=location_label(session.ip),
    )


def on_user_deleting(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """Bury cached copies of a deleted user's sessions once the delete commits.

    The rows go with the user through the database cascade, which bypasses
    ``SessionQuerySet.delete()``; without this a cached copy would keep
    serving the deleted user's session until it expired.
    """
    from user_sessions.models import _forget_cached, get_session_model

    forget = _forget_cached()
    if forget is None:
        return
    sessions = get_session_model().objects.filter(user=instance)
    keys = list(sessions.values_list("session_key", flat=True))
    if keys:
        transaction.on_commit(lambda: forget(keys), using=using)


def connect() -> None:
    from django.contrib.auth.signals import user_logged_in

    from user_sessions import alerts
    from user_sessions.passwords import on_user_saved
    from user_sessions.policy import on_user_logged_in as apply_session_cap
    from user_sessions.policy import on_user_logging_in as lock_for_session_cap

    # Before the next one, which saves the session (see on_user_logging_in).
    user_logged_in.connect(
        lock_for_session_cap, dispatch_uid="user_sessions.policy.on_user_logging_in"
    )
    user_logged_in.connect(on_user_logged_in, dispatch_uid="user_sessions.on_user_logged_in")
    # After the receiver above: it saves the session the alert looks at.
    user_logged_in.connect(
        alerts.on_user_logged_in, dispatch_uid="user_sessions.alerts.on_user_logged_in"
    )
    # After on_user_logged_in, which saves the session the cap must count.
    user_logged_in.connect(apply_session_cap, dispatch_uid="user_sessions.policy.on_user_logged_in")
    post_save.connect(
        on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="user_sessions.on_user_saved"
    )
    pre_delete.connect(
        on_user_deleting,
        sender=settings.AUTH_USER_MODEL,
        dispatch_uid="user_sessions.on_user_deleting",
    )


__all__ = ["connect", "session_created"]
