"""The request's user from the session's joined read: Django's ``get_user()`` case by case."""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any, ClassVar

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Manager
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject

from user_sessions.backends.db import SessionStore
from user_sessions.backends.statements import statements
from user_sessions.middleware import SessionMiddleware
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ALLOW_ALL = "django.contrib.auth.backends.AllowAllUsersModelBackend"


class KeepsGetUser(ModelBackend):
    """A subclass that leaves get_user alone: the join applies."""


class OwnGetUser(ModelBackend):
    """A subclass with its own get_user: always Django's path."""

    def get_user(self, user_id: Any) -> Any:
        return super().get_user(user_id)


@pytest.fixture(params=[True, False], ids=["joined", "plain"])
def join(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.USER_SESSIONS_JOIN_USER = request.param
    statements.clear()
    return bool(request.param)


def login(client: Client, user: Any, backend: str = MODEL_BACKEND) -> str:
    client.force_login(user, backend=backend)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def edit_session(key: str, **values: Any) -> None:
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    for name, value in values.items():
        store[name] = value
    store.save()


def whoami(client: Client, path: str = "/read/") -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


@pytest.mark.parametrize("path", ["/read/", "/async/read/"])
def test_signed_in_read_is_one_query(join: bool, user: Any, path: str) -> None:
    client = Client()
    login(client, user)
    body, queries = whoami(client, path)
    assert body == f"user={user.pk}"
    # The session row and its owner in one SELECT; Django's path reads twice.
    assert queries == (1 if join else 2)


def test_one_query_by_the_book(client: Client, user: Any, django_assert_num_queries: Any) -> None:
    login(client, user)
    with django_assert_num_queries(1):
        assert client.get("/read/").content == f"user={user.pk}".encode()


def test_anonymous_session_needs_no_owner(join: bool, client: Client) -> None:
    store = SessionStore()
    store["counter"] = 1
    store.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key  # type: ignore[assignment]
    assert whoami(client) == ("user=", 1)


def test_backend_not_listed_is_anonymous(join: bool, client: Client, user: Any) -> None:
    key = login(client, user)
    edit_session(key, **{BACKEND_SESSION_KEY: "tests.nowhere.Backend"})
    body, _ = whoami(client)
    assert body == "user="
    # Django neither flushes nor rewrites such a session.
    assert Session.objects.filter(pk=key).exists()


def test_backend_removed_from_settings(
    join: bool, client: Client, user: Any, settings: Any
) -> None:
    login(client, user)
    settings.AUTHENTICATION_BACKENDS = [ALLOW_ALL]
    assert whoami(client)[0] == "user="


def test_inactive_user_stays_out(join: bool, client: Client, user: Any) -> None:
    key = login(client, user)
    type(user)._default_manager.filter(pk=user.pk).update(is_active=False)
    assert whoami(client)[0] == "user="
    assert Session.objects.filter(pk=key).exists()


def test_inactive_user_allowed_by_allow_all(
    join: bool, client: Client, user: Any, settings: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = [MODEL_BACKEND, ALLOW_ALL]
    login(client, user, backend=ALLOW_ALL)
    type(user)._default_manager.filter(pk=user.pk).update(is_active=False)
    body, queries = whoami(client)
    assert body == f"user={user.pk}"
    assert queries == (1 if join else 2)


@pytest.mark.parametrize(
    ("backend", "joined_queries"),
    [(f"{__name__}.KeepsGetUser", 1), (f"{__name__}.OwnGetUser", 2)],
)
def test_subclass_backends(
    join: bool, client: Client, user: Any, settings: Any, backend: str, joined_queries: int
) -> None:
    settings.AUTHENTICATION_BACKENDS = [MODEL_BACKEND, backend]
    login(client, user, backend=backend)
    body, queries = whoami(client)
    assert body == f"user={user.pk}"
    assert queries == (joined_queries if join else 2)


def test_hash_mismatch_flushes(join: bool, client: Client, user: Any) -> None:
    key = login(client, user)
    edit_session(key, **{HASH_SESSION_KEY: "0" * 64})
    response = client.get("/read/")
    assert response.content == b"user="
    assert not Session.objects.filter(pk=key).exists()
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""


def test_password_changed_elsewhere_flushes(join: bool, client: Client, user: Any) -> None:
    key = login(client, user)
    user.set_password("another-password")
    type(user)._default_manager.filter(pk=user.pk).update(password=user.password)
    assert whoami(client)[0] == "user="
    assert not Session.objects.filter(pk=key).exists()


def test_fallback_secret_cycles_the_key(
    join: bool, client: Client, user: Any, settings: Any
) -> None:
    key = login(client, user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    response = client.get("/read/")
    assert response.content == f"user={user.pk}".encode()
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key and new_key != key
    assert not Session.objects.filter(pk=key).exists()
    # The session now carries the hash under the current secret.
    assert SessionStore(new_key)[HASH_SESSION_KEY] == user.get_session_auth_hash()
    assert whoami(client) == (f"user={user.pk}", 1 if join else 2)


def test_deleted_user(join: bool, client: Client, user: Any) -> None:
    key = login(client, user)
    user.delete()
    assert whoami(client)[0] == "user="
    assert not Session.objects.filter(pk=key).exists()


def test_session_naming_another_user_than_its_row(
    join: bool, client: Client, user: Any, user_factory: Any
) -> None:
    # Data and owner column disagree (edited by hand): the data decides, as in Django.
    other = user_factory()
    key = login(client, user)
    Session.objects.filter(pk=key).update(user=other)
    assert whoami(client)[0] == f"user={user.pk}"


def test_custom_default_manager_takes_djangos_path(
    client: Client, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A default manager with its own get_queryset may hide rows the join cannot know about.
    manager_class = type(type(user)._default_manager)

    def get_queryset(self: Any) -> Any:
        return Manager.get_queryset(self)

    monkeypatch.setattr(manager_class, "get_queryset", get_queryset, raising=False)
    login(client, user)
    assert whoami(client) == (f"user={user.pk}", 2)


def test_login_in_the_request_wins(client: Client, user: Any, user_factory: Any) -> None:
    other = user_factory()
    login(client, other)
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert whoami(client)[0] == f"user={user.pk}"


def test_cached_db(join: bool, client: Client, user: Any, settings: Any) -> None:
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    cache.clear()
    key = login(client, user)
    # A cache hit has no joined row: Django's user query, nothing else.
    assert whoami(client) == (f"user={user.pk}", 1)
    cache.clear()
    # A miss reads the row, with its owner when joined.
    assert whoami(client) == (f"user={user.pk}", 1 if join else 2)
    edit_session(key, **{HASH_SESSION_KEY: "0" * 64})
    assert whoami(client)[0] == "user="
    cache.clear()


def test_wrapped_user_is_left_alone(client: Client, user: Any, settings: Any) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        f"{__name__}.wrapping_middleware",
    ]
    login(client, user)
    body, queries = whoami(client)
    assert body == f"user={user.pk}"
    assert queries == 2


def wrapping_middleware(get_response: Any) -> Any:
    """Wraps request.user as two-factor packages do: its wrapper must stay."""

    def middleware(request: Any) -> Any:
        user = request.user
        request.user = SimpleLazyObject(lambda: user)
        return get_response(request)

    return middleware


def test_user_model_without_session_hash_takes_djangos_path(
    client: Client, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, user)
    monkeypatch.delattr(AbstractBaseUser, "get_session_auth_hash")
    # Django accepts such a user without a hash check; the join leaves that to Django.
    assert whoami(client) == (f"user={user.pk}", 2)


def test_asgi_request_awaiting_auser(join: bool, user: Any) -> None:
    # Through Django's ASGI handler: the session load and the joined user are awaited.
    client = AsyncClient()
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = async_to_sync(client.get)("/async/read/")
    assert response.content == f"user={user.pk}".encode()
    assert len(queries) == (1 if join else 2)


def test_asgi_hash_mismatch_flushes(join: bool, user: Any) -> None:
    client = AsyncClient()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    edit_session(key, **{HASH_SESSION_KEY: "0" * 64})
    response = async_to_sync(client.get)("/async/read/")
    assert response.content == b"user="
    assert not Session.objects.filter(pk=key).exists()


def _our_view_step(handler: Any) -> Any:
    from asgiref.sync import SyncToAsync

    for method in handler._view_middleware:
        owner = getattr(
            method.func if isinstance(method, SyncToAsync) else method, "__self__", None
        )
        if isinstance(owner, SessionMiddleware):
            return method
    raise AssertionError("the session middleware's view step is not installed")


def test_the_view_step_takes_no_thread_hop_under_asgi() -> None:
    # Django runs a sync process_view of an async chain in a worker thread,
    # one hop per request; ours only installs request.user, so it is async there.
    from asgiref.sync import SyncToAsync
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    under_asgi = _our_view_step(ASGIHandler())
    assert not isinstance(under_asgi, SyncToAsync)
    assert inspect.iscoroutinefunction(under_asgi)
    under_wsgi = _our_view_step(WSGIHandler())
    assert not inspect.iscoroutinefunction(under_wsgi)


class ViewStepOfItsOwn(SessionMiddleware):
    """A site's subclass with its own (sync) process_view."""

    seen: ClassVar[list[str]] = []

    def process_view(self, request: Any, *args: Any) -> None:
        self.seen.append(request.path)
        super().process_view(request, *args)


def test_a_subclass_with_its_own_view_step_keeps_it_under_asgi(settings: Any, user: Any) -> None:
    from django.core.handlers.asgi import ASGIHandler

    ours = "user_sessions.middleware.SessionMiddleware"
    settings.MIDDLEWARE = [
        f"{__name__}.ViewStepOfItsOwn" if entry == ours else entry for entry in settings.MIDDLEWARE
    ]
    assert _our_view_step(ASGIHandler()).func.__func__ is ViewStepOfItsOwn.process_view
    client = AsyncClient()
    client.force_login(user)
    ViewStepOfItsOwn.seen.clear()
    response = async_to_sync(client.get)("/async/read/")
    assert response.content == f"user={user.pk}".encode()
    assert ViewStepOfItsOwn.seen == ["/async/read/"]
