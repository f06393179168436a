"""A site's own engine: a subclass of the package's cached_db store."""

from __future__ import annotations

from user_sessions.backends import cached_db


class SessionStore(cached_db.SessionStore):
    pass
