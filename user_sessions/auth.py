"""The request's user from the row the session's read already joined.

Django finds the signed-in user with two queries: the session row, then
``ModelBackend.get_user()`` reads the user row. The database store reads the
owner's row in the same SELECT as the session (``statements.read_with_owner``);
this module hands that row to the request when, and only when, Django's
``auth.get_user()`` would have returned that very row:

* the session names a backend listed in ``AUTHENTICATION_BACKENDS`` that is a
  ``ModelBackend`` (or ``AllowAllUsersModelBackend``, or a subclass) keeping
  ModelBackend's own ``get_user``/``aget_user``;
* the user model's default manager is a plain one (a custom ``get_queryset``
  may hide rows a join cannot know about) and the router reads or writes
  users on the database the session came from;
* the joined row's key is the one the session names, the backend's
  ``user_can_authenticate()`` accepts it, and the session's auth hash matches
  the current ``SECRET_KEY``.

Anything else (no joined row, a hash only a fallback secret matches, an
inactive user, another backend) goes to Django's own ``get_user()``/
``aget_user()``, which costs its usual query and does what it always does:
cycling the key on a fallback match, flushing the session on a mismatch.
The fast path never flushes or changes anything itself.

How the request gets it: ``AuthenticationMiddleware`` sets ``request.user``
(a lazy object calling ``auth.get_user``) and ``request.auser``. Our
``SessionMiddleware.process_view`` runs after every middleware's
``process_request`` and before the view; there it swaps in this module's
lazy user and ``auser`` only if both are still exactly Django's and
unevaluated. A middleware that wrapped them (two-factor packages do) keeps
its wrapper and the request takes Django's normal path. This needs no
change to ``MIDDLEWARE`` or ``AUTHENTICATION_BACKENDS`` and patches nothing
global; ``USER_SESSIONS_JOIN_USER = False`` turns it off.

With ``cached_db`` and ``USER_SESSIONS_CACHE_USER`` the owner's row can come
from the cache instead (``backends/cached_db.py`` says when it is read anew);
it passes the same checks, its session auth hash standing in for the
password it is computed from. A hit without it reads the row once, with the
query Django's ``get_user()`` would have run, and caches it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.db import router
from django.db.models import Manager, QuerySet
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject, empty

from user_sessions.backends.db import SessionStore

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpRequest


def plain_manager(manager: Manager[Any]) -> bool:
    return (
        type(manager).get_queryset is Manager.get_queryset
        and manager._queryset_class is QuerySet  # type: ignore[attr-defined]
        and manager._db is None
    )


def joined_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The joined owner row if Django's ``get_user()`` would return it; else None.

    The session must be loaded already: this reads only its cached data.
    """
    session = getattr(request, "session", None)
    if not isinstance(session, SessionStore):
        return None
    owner = session.owner_row
    if owner is None:
        return None
    user_model = auth.get_user_model()
    if type(owner) is not user_model or not plain_manager(user_model._default_manager):
        return None
    try:
        user_id = user_model._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError, TypeError, ValueError):
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    try:
        backend = auth.load_backend(backend_path)
    except ImportError:
        return None
    if (
        not isinstance(backend, ModelBackend)
        or type(backend).get_user is not ModelBackend.get_user
        or type(backend).aget_user is not ModelBackend.aget_user
    ):
        return None
    # The row came from where the session is read (its write database, see
    # SessionStore.db_for_read). Django would read users from db_for_read: the
    # same database, or a replica of the write database whose row can only be
    # older than the one joined here.
    if owner.pk != user_id or owner._state.db not in (
        router.db_for_read(user_model),
        router.db_for_write(user_model),
    ):
        return None
    if not backend.user_can_authenticate(owner):
        return None
    if not hasattr(owner, "get_session_auth_hash"):
        # Django accepts such a user unverified; its own path says so.
        return None
    # A cached owner (USER_SESSIONS_CACHE_USER) carries the hash instead of
    # the password it is computed from, tagged with the SECRET_KEY it used.
    expected = getattr(session, "owner_auth_hash", None) or owner.get_session_auth_hash()
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, expected):
        return None
    return owner


def _read_owner(session: Any) -> bool:
    # A cached_db hit without the owner's row (USER_SESSIONS_CACHE_USER): the
    # store reads it with the query Django's get_user() would have run.
    read_owner = getattr(session, "read_owner", None)
    return read_owner is not None and bool(read_owner())


def _read_owner_from_primary(session: Any) -> bool:
    """Read the owner where users are written, when the router reads them elsewhere.

    A cache hit brings no owner row, and Django's ``get_user()`` would read
    it from a read replica, whose row may predate a password change: the
    session that changed it would be signed out (its new hash fails against
    the old row). The same single query, on the primary; False if no row.
    """
    if not isinstance(session, SessionStore) or session.owner_row is not None:
        return False
    user_model = auth.get_user_model()
    using = router.db_for_write(user_model)
    if using == router.db_for_read(user_model) or not plain_manager(user_model._default_manager):
        return False
    try:
        user_id = user_model._meta.pk.to_python(session[SESSION_KEY])
    except (KeyError, ValidationError, TypeError, ValueError):
        return False
    session.owner_row = user_model._default_manager.using(using).filter(pk=user_id).first()
    return session.owner_row is not None


def get_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    """``django.contrib.auth.get_user()``, without its user query when the join allows."""
    # Reading the key loads the session (and its owner) if nothing did yet.
    if SESSION_KEY in request.session:
        user = joined_user(request)
        if user is None and _read_owner(request.session):
            user = joined_user(request)
        if user is None and _read_owner_from_primary(request.session):
            user = joined_user(request)
        if user is not None:
            return user
    return auth.get_user(request)


async def aget_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    """``django.contrib.auth.aget_user()``, without its user query when the join allows."""
    session = request.session
    if await session.aget(SESSION_KEY) is not None:
        user = joined_user(request)
        if (
            user is None
            and getattr(session, "wants_owner", False)
            and await sync_to_async(_read_owner)(session)
        ):
            user = joined_user(request)
        if user is None and await sync_to_async(_read_owner_from_primary)(session):
            user = joined_user(request)
        if user is not None:
            return user
    return await auth.aget_user(request)


def _cached_user(request: HttpRequest) -> Any:
    # As django.contrib.auth.middleware.get_user, which it stands in for.
    if not hasattr(request, "_cached_user"):
        request._cached_user = get_user(request)  # type: ignore[attr-defined]
    return request._cached_user  # type: ignore[attr-defined]


async def _auser(request: HttpRequest) -> Any:
    # As django.contrib.auth.middleware.auser, which it stands in for.
    if not hasattr(request, "_acached_user"):
        request._acached_user = await aget_user(request)  # type: ignore[attr-defined]
    return request._acached_user  # type: ignore[attr-defined]


def _djangos_lazy_user(value: Any) -> bool:
    """Whether ``value`` is AuthenticationMiddleware's unevaluated ``request.user``."""
    if type(value) is not SimpleLazyObject or value._wrapped is not empty:
        return False
    setup = value.__dict__.get("_setupfunc")
    return getattr(setup, "__module__", None) == auth_middleware.__name__ and getattr(
        setup, "__qualname__", ""
    ).startswith("AuthenticationMiddleware.")


def _djangos_auser(value: Any, request: HttpRequest) -> bool:
    return (
        isinstance(value, functools.partial)
        and value.func is auth_middleware.auser
        and value.args == (request,)
        and not value.keywords
    )


def install(request: HttpRequest) -> None:
    """Give ``request`` this module's ``user``/``auser`` where Django's are still untouched."""
    attributes = request.__dict__
    if "_cached_user" not in attributes and _djangos_lazy_user(attributes.get("user")):
        request.user = SimpleLazyObject(lambda: _cached_user(request))  # type: ignore[assignment]
    if "_acached_user" not in attributes and _djangos_auser(attributes.get("auser"), request):
        request.auser = functools.partial(_auser, request)
