"""The joined and cached owner with a custom user model: run by tests/test_custom_users.py.

Each run has one ``AUTH_USER_MODEL`` (``CUSTOM_USER``): a UUID key, a string
key (both joined: one query per signed-in read, none on a warm opt-in
cached_db), or a default manager that hides rows (never joined: Django's
path, whose answer the join could not know).
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import auth as django_auth
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.db import connection
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from user_sessions import auth
from user_sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)

VARIANT = os.environ.get("CUSTOM_USER", "uuid")
JOINED = VARIANT != "managed"


@pytest.fixture(autouse=True)
def cache_user(settings: Any) -> None:
    settings.USER_SESSIONS_CACHE_USER = True


@pytest.fixture
def user(user_factory: Any) -> Any:
    extra: dict[str, Any] = {}
    if VARIANT == "uuid":
        extra = {"nickname": "Al", "score": Decimal("12.50")}
    elif VARIANT == "string":
        extra = {"profile": {"theme": "dark", "langs": ["nl", "en"]}}
    return user_factory(username="alice", **extra)


def test_the_model_is_the_custom_one(user: Any) -> None:
    assert settings.AUTH_USER_MODEL.startswith("custom_users.")
    assert type(user) is get_user_model()
    if VARIANT == "uuid":
        assert isinstance(user.pk, uuid.UUID)
    elif VARIANT == "string":
        assert user.pk == "alice"


def expected_queries(engine: str) -> list[int]:
    if engine == "db":
        return [1, 1, 1] if JOINED else [2, 2, 2]
    # cached_db: the first request reads the owner, the next ones nothing;
    # with the manager, every hit pays Django's user query.
    return [1, 0, 0] if JOINED else [1, 1, 1]


@pytest.mark.parametrize("path", ["/read/", "/async/read/"])
def test_signed_in_reads(engine: str, user: Any, path: str) -> None:
    client = Client()
    client.force_login(user)
    counts = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        assert response.content == f"user={user.pk}".encode()
        counts.append(len(queries))
    assert counts == expected_queries(engine)


def test_asgi(engine: str, user: Any) -> None:
    client = AsyncClient()
    client.force_login(user)
    counts = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            response = async_to_sync(client.get)("/async/read/")
        assert response.content == f"user={user.pk}".encode()
        counts.append(len(queries))
    assert counts == expected_queries(engine)


def fields(user: Any) -> dict[str, Any]:
    return {f.attname: getattr(user, f.attname) for f in type(user)._meta.concrete_fields}


def test_same_user_as_djangos_get_user(engine: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    for _ in range(2):  # a cold cache, then a warm one
        ours = RequestFactory().get("/")
        ours.session = store_class(key)
        djangos = RequestFactory().get("/")
        djangos.session = store_class(key)
        assert fields(auth.get_user(ours)) == fields(django_auth.get_user(djangos))


def test_hash_mismatch_flushes(engine: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.get("/read/")
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    store[HASH_SESSION_KEY] = "0" * 64
    store.save()
    assert client.get("/read/").content == b"user="
    assert not Session.objects.filter(pk=key).exists()


def test_deactivated_user(engine: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    client.get("/read/")
    client.get("/read/")
    user.is_active = False
    user.save()
    assert client.get("/read/").content == b"user="


def test_deleted_user(engine: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    client.get("/read/")
    user.delete()
    assert client.get("/read/").content == b"user="


def test_row_hidden_by_the_manager_is_anonymous(engine: str, user: Any) -> None:
    if VARIANT != "managed":
        # Hiding needs the manager: the others cannot hide a row.
        assert not hasattr(user, "hidden")
        return
    client = Client()
    client.force_login(user)
    client.get("/read/")
    client.get("/read/")
    user.hidden = True
    user.save()
    # The join (or the cache) would still find the row; Django's get_user does not.
    assert client.get("/read/").content == b"user="
    assert client.get("/async/read/").content == b"user="
