"""Checks for more than one server: a replicated session cache, prepared statements and a pooler."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from user_sessions.backends.cached_db import session_cache
from user_sessions.checks import check_prepared_statements, check_replicated_cache

CACHED_DB = "user_sessions.backends.cached_db"
TWO_SERVERS = ["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"]


class ReplicatedCache(LocMemCache):
    """Stands in for a third-party cache that reads from replicas (django-redis does)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__("replicated", params)


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id or "" for m in messages]


def test_a_replicated_cache_the_store_cannot_route_is_warned_about(settings: Any) -> None:
    settings.SESSION_ENGINE = CACHED_DB
    settings.CACHES = {
        "default": {
            "BACKEND": "tests.test_scaleout_checks.ReplicatedCache",
            "LOCATION": TWO_SERVERS,
        }
    }
    messages = check_replicated_cache()
    assert ids(messages) == ["user_sessions.W030"]
    assert "'default'" in messages[0].msg
    assert "SESSION_CACHE_ALIAS" in (messages[0].hint or "")
    # The same servers in one string, as Django also accepts them.
    settings.CACHES["default"]["LOCATION"] = ";".join(TWO_SERVERS)
    assert ids(check_replicated_cache()) == ["user_sessions.W030"]


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.redis.RedisCache",  # the store reads from the first
        "django.core.cache.backends.memcached.PyMemcacheCache",  # shards, no replicas
    ],
)
def test_caches_on_several_servers_the_store_handles(settings: Any, backend: str) -> None:
    settings.SESSION_ENGINE = CACHED_DB
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": TWO_SERVERS}}
    assert check_replicated_cache() == []


def test_one_server_or_the_db_store_needs_nothing(settings: Any) -> None:
    settings.SESSION_ENGINE = CACHED_DB
    backend = "tests.test_scaleout_checks.ReplicatedCache"
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": TWO_SERVERS[:1]}}
    assert check_replicated_cache() == []
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": TWO_SERVERS}}
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    assert check_replicated_cache() == []


def test_the_store_reads_a_redis_cache_with_replicas_from_its_first_server(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TWO_SERVERS,
            "KEY_PREFIX": "site",
            "VERSION": 3,
        }
    }
    primary = session_cache()
    assert primary._servers == TWO_SERVERS[:1]  # type: ignore[attr-defined]
    assert primary.make_key("k") == "site:3:k"
    assert session_cache() is primary
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TWO_SERVERS[0],
        }
    }

    assert session_cache() is caches["default"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    ("pooled", "options", "warned"),
    [
        (True, {"prepare_threshold": 5}, True),
        (True, {"prepare_threshold": None}, False),
        (True, {"server_side_binding": True}, False),  # Django prepares nothing by default
        (False, {"prepare_threshold": 5}, False),  # no pooler declared
    ],
)
def test_prepared_statements_behind_a_pooler(
    settings: Any, pooled: bool, options: dict[str, Any], warned: bool
) -> None:
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "site",
        "DISABLE_SERVER_SIDE_CURSORS": pooled,
        "OPTIONS": options,
    }
    settings.DATABASES = {
        **settings.DATABASES,
        "default": {**settings.DATABASES["default"], **database},
    }
    messages = check_prepared_statements()
    assert ids(messages) == (["user_sessions.W031"] if warned else [])
    if warned:
        assert "1.21" in (messages[0].hint or "")
