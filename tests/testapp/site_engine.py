"""A site's engine for its own model on AbstractSession, wired as Django documents."""

from __future__ import annotations

from typing import Any

from user_sessions.backends import db


class SessionStore(db.SessionStore):
    @classmethod
    def get_model_class(cls) -> Any:
        from tests.testapp.models import SiteSession

        return SiteSession

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        obj = super().create_model_instance(data)
        obj.trusted_device = bool(data.get("trusted_device"))
        return obj
