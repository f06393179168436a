from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from tests.geoip import *  # noqa: F403  (GeoIP database fixtures)

_counter = itertools.count()


def run_pytest_under(settings_module: str, path: str, env: dict[str, str] | None = None) -> str:
    """Run the cases in ``path`` under another settings module in a pytest of their own.

    For what cannot change in a running process (``AUTH_USER_MODEL``, apps,
    middleware). Fails with the end of its output unless every case passed;
    returns the closing summary line.
    """
    import re
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--ds={settings_module}",
            path,
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), output[-2000:]
    return summary


#: For a test whose result cannot depend on the suite's database (it starts a
#: site on a SQLite file of its own, or runs no query at all): the SQLite run
#: of each Django version runs it, the PostgreSQL and MariaDB runs skip it.
in_the_sqlite_run_only = pytest.mark.skipif(
    os.environ.get("USER_SESSIONS_TEST_DB", "sqlite") != "sqlite",
    reason="does not depend on the database: the suite's SQLite run runs it",
)

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture(params=["db", "cached_db"])
def engine(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Run a test once per session store this package ships."""
    settings.SESSION_ENGINE = f"user_sessions.backends.{request.param}"
    cache.clear()
    yield request.param
    cache.clear()


@pytest.fixture
def user_factory(db: None) -> Callable[..., Any]:
    def make(**fields: Any) -> Any:
        n = next(_counter)
        fields.setdefault("username", f"user{n}")
        password = fields.pop("password", "secret-password")
        user = get_user_model().objects.create_user(**fields)
        user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def user(user_factory: Callable[..., Any]) -> Any:
    return user_factory(username="alice")


@pytest.fixture
def browser_factory() -> Callable[..., Client]:
    """A test client that looks like a given browser on a given address."""

    def make(user_agent: str = CHROME_WINDOWS, ip: str = "203.0.113.10", **extra: Any) -> Client:
        return Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip, **extra)

    return make


@pytest.fixture
def auth_client(browser_factory: Callable[..., Client], user: Any) -> Client:
    """A browser signed in as ``user`` through the real login view."""
    client = browser_factory()
    response = client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert response.status_code == 302, response.content
    return client
