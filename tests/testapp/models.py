"""Session models a site might write (tests/test_extending.py).

No migrations: the test database creates their tables directly.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models

from user_sessions.models import AbstractSession


class SiteSession(AbstractSession):
    """Every column of the package's, and one of the site's."""

    trusted_device = models.BooleanField(default=False)

    @classmethod
    def get_session_store_class(cls) -> Any:
        from tests.testapp.site_engine import SessionStore

        return SessionStore


class PlainSession(AbstractBaseSession):
    """Django's columns only, as Django's documentation extends a session model."""

    account_id = models.IntegerField(null=True)

    @classmethod
    def get_session_store_class(cls) -> Any:
        from tests.testapp.plain_engine import SessionStore

        return SessionStore
