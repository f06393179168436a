"""A site's engine for a model with only AbstractBaseSession's columns (and its own)."""

from __future__ import annotations

from typing import Any

from user_sessions.backends import db


class SessionStore(db.SessionStore):
    @classmethod
    def get_model_class(cls) -> Any:
        from tests.testapp.models import PlainSession

        return PlainSession

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        obj = super().create_model_instance(data)
        obj.account_id = self.user_id
        return obj
