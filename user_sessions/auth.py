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
  may hide rows a join cannot know about) and the router reads users from
  the database the session came from;
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
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

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


def _plain_manager(manager: Manager[Any]) -> bool:
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
    if type(owner) is not user_model or not _plain_manager(user_model._default_manager):
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
    if owner.pk != user_id or owner._state.db != router.db_for_read(user_model):
        return None
    if not backend.user_can_authenticate(owner):
        return None
    if not hasattr(owner, "get_session_auth_hash"):
        # Django accepts such a user unverified; its own path says so.
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, owner.get_session_auth_hash()):
        return None
    return owner


def get_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    """``django.contrib.auth.get_user()``, without its user query when the join allows."""
    # Reading the key loads the session (and its owner) if nothing did yet.
    if SESSION_KEY in request.session:
        user = joined_user(request)
        if user is not None:
            return user
    return auth.get_user(request)


async def aget_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    """``django.contrib.auth.aget_user()``, without its user query when the join allows."""
    if await request.session.aget(SESSION_KEY) is not None:
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
