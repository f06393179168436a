from __future__ import annotations

import pytest
from django.core import checks
from django.core.cache.backends.redis import RedisCache
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from user_sessions.checks import (
    check_cache,
    check_databases,
    check_geoip,
    check_password_attempts,
    check_setup,
)

OURS = "user_sessions.middleware.SessionMiddleware"
DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id or "" for m in messages]


def test_the_documented_setup_is_clean():
    assert check_setup() == []
    assert check_geoip() == []
    call_command("check", "--fail-level", "WARNING")


def test_our_middleware_with_another_engine(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    assert ids(check_setup()) == ["user_sessions.E001"]


def test_djangos_middleware_with_our_engine(settings):
    settings.MIDDLEWARE = [m.replace(OURS, DJANGOS) for m in settings.MIDDLEWARE]
    messages = check_setup()
    assert ids(messages) == ["user_sessions.E002"]
    assert OURS in (messages[0].hint or "")


def test_no_session_middleware_at_all(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != OURS]
    assert "user_sessions.E003" in ids(check_setup())


def test_both_session_apps_installed(settings):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django.contrib.sessions"]
    assert "user_sessions.W004" in ids(check_setup())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USER_SESSIONS_ACTIVITY_INTERVAL", -1),
        ("USER_SESSIONS_ACTIVITY_INTERVAL", "60"),
        ("USER_SESSIONS_IP_PRIVACY", "partial"),
        ("USER_SESSIONS_REQUIRE_PASSWORD", True),
        ("USER_SESSIONS_REFRESH_INTERVAL", 1.5),
        ("USER_SESSIONS_WIDGET_LIMIT", 0),
        ("USER_SESSIONS_WIDGET_LIMIT", "10"),
        ("USER_SESSIONS_WIDGET_LIMIT", True),
        ("USER_SESSIONS_PASSWORD_ATTEMPTS", -1),
        ("USER_SESSIONS_PASSWORD_ATTEMPTS", True),
        ("USER_SESSIONS_PASSWORD_LOCKOUT", 0),
        ("USER_SESSIONS_PASSWORD_LOCKOUT", "300"),
        ("USER_SESSIONS_PROXY_COUNT", -2),
        ("USER_SESSIONS_CLIENT_IP_RESOLVER", "no.such.module.resolver"),
    ],
)
def test_invalid_settings_are_reported_clearly(settings, name: str, value: object):
    setattr(settings, name, value)
    messages = check_setup()
    assert ids(messages) == ["user_sessions.E005"]
    assert name in messages[0].msg


def test_missing_geoip_path(settings, tmp_path):
    settings.GEOIP_PATH = str(tmp_path / "nowhere")
    messages = check_geoip()
    assert ids(messages) == ["user_sessions.W006"]
    settings.GEOIP_PATH = str(tmp_path)
    assert check_geoip() == []


def test_cached_db_on_a_process_local_cache_warns(settings):
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ids(check_cache()) == ["user_sessions.W007"]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": "django.core.cache.backends.redis.RedisCache"},
    }
    settings.SESSION_CACHE_ALIAS = "sessions"
    assert check_cache() == []
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    settings.SESSION_CACHE_ALIAS = "default"
    assert check_cache() == []


def test_a_sites_subclass_of_our_stores_counts_as_ours(settings):
    settings.SESSION_ENGINE = "tests.testapp.custom_engine"
    assert check_setup() == []
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ids(check_cache()) == ["user_sessions.W007"]


# Database layout (E008) -------------------------------------------------------------


def test_sessions_routed_away_from_their_owners_is_an_error(settings):
    settings.DATABASE_ROUTERS = ["tests.testapp.routers.SessionsElsewhere"]
    messages = check_databases()
    assert ids(messages) == ["user_sessions.E008"]
    assert "'sessions'" in messages[0].msg and "'default'" in messages[0].msg
    assert "auth.User" in messages[0].msg
    assert "DATABASE_ROUTERS" in (messages[0].hint or "")
    with pytest.raises(SystemCheckError):
        call_command("check")


def test_sessions_routed_with_their_owners_is_fine(settings):
    settings.DATABASE_ROUTERS = ["tests.testapp.routers.SessionsWithUsers"]
    assert check_databases() == []


def test_the_layout_check_looks_at_the_model_the_engine_stores(settings):
    # A site's own model (on AbstractSession) is what sign-ins write: routed
    # away from its owners it fails; the package's unused table does not matter.
    settings.SESSION_ENGINE = "tests.testapp.site_engine"
    settings.DATABASE_ROUTERS = ["tests.testapp.routers.SiteSessionsElsewhere"]
    messages = check_databases()
    assert ids(messages) == ["user_sessions.E008"]
    assert "'sessions'" in messages[0].msg
    settings.DATABASE_ROUTERS = ["tests.testapp.routers.SessionsElsewhere"]
    assert check_databases() == []
    # Django's columns alone: no owner to keep together with (W011 says the rest).
    settings.SESSION_ENGINE = "tests.testapp.plain_engine"
    settings.DATABASE_ROUTERS = ["tests.testapp.routers.SiteSessionsElsewhere"]
    assert check_databases() == []


# Counting wrong passwords (W009) ----------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "exact"),
    [
        ("django.core.cache.backends.redis.RedisCache", True),
        ("django.core.cache.backends.memcached.PyMemcacheCache", True),
        ("django.core.cache.backends.memcached.PyLibMCCache", True),
        ("django.core.cache.backends.db.DatabaseCache", False),
        ("django.core.cache.backends.filebased.FileBasedCache", False),
        ("django.core.cache.backends.locmem.LocMemCache", False),
        ("django.core.cache.backends.dummy.DummyCache", False),
    ],
)
def test_password_attempts_warn_on_caches_that_cannot_count_exactly(settings, backend, exact):
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "127.0.0.1:1"}}
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    assert ids(check_password_attempts()) == ([] if exact else ["user_sessions.W009"])
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 0
    assert check_password_attempts() == []
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 5
    settings.USER_SESSIONS_REQUIRE_PASSWORD = None
    assert check_password_attempts() == []


class SiteRedisCache(RedisCache):
    """A site's own cache class on Django's Redis cache: it counts as Redis does."""


def test_password_attempts_do_not_warn_on_a_subclass_of_an_exact_cache(settings):
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.SiteRedisCache"}}
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    assert check_password_attempts() == []
    # A BACKEND that does not import is no exact counter: W009 still says so.
    settings.CACHES = {"default": {"BACKEND": "tests.nowhere.RedisCache"}}
    assert ids(check_password_attempts()) == ["user_sessions.W009"]
