"""A store that reads sessions where the router reads them, as Django's own store does.

What ``SessionStore.db_for_read()`` exists to prevent; the tests use it to
show that the replica really lags while they run.
"""

from __future__ import annotations

from django.db import router

from user_sessions.backends import db


class SessionStore(db.SessionStore):
    def db_for_read(self) -> str:
        return router.db_for_read(self.model)
