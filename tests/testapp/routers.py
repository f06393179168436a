"""Database routers the checks are tested with."""

from __future__ import annotations

from typing import Any


class SessionsElsewhere:
    """Sends sessions to a database of their own: the layout check E008 refuses."""

    def _route(self, model: type[Any], **hints: Any) -> str | None:
        return "sessions" if model._meta.app_label == "user_sessions" else None

    db_for_read = db_for_write = _route


class SessionsWithUsers:
    """Sends sessions and users to one other database: a supported layout."""

    def _route(self, model: type[Any], **hints: Any) -> str | None:
        return "accounts" if model._meta.app_label in ("user_sessions", "auth") else None

    db_for_read = db_for_write = _route


class SiteSessionsElsewhere:
    """Sends the site's own session model (tests.testapp) to a database of its own."""

    def _route(self, model: type[Any], **hints: Any) -> str | None:
        return "sessions" if model._meta.app_label == "testapp" else None

    db_for_read = db_for_write = _route
