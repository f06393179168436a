"""Session middleware that tells the store who is asking and keeps activity fresh."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.db import DatabaseError

from user_sessions import auth, hints, passwords
from user_sessions.backends.db import SessionStore as UserSessionStore
from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from django.http import HttpRequest, HttpResponse, HttpResponseBase

logger = logging.getLogger("user_sessions.middleware")


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's ``SessionMiddleware`` plus client details and activity tracking.

    Being a subclass keeps every behaviour of Django's (cookie flags,
    ``SESSION_SAVE_EVERY_REQUEST``, ``SessionInterrupted``, ``Vary: Cookie``)
    and satisfies the admin's ``admin.E410`` check without silencing it.
    """

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]],
    ) -> None:
        super().__init__(get_response)
        from user_sessions.devices import warm_up

        # The user-agent parser compiles its rules on first use (~0.2 s):
        # pay that when the server starts, not on a user's request.
        warm_up()
        self.tracks_clients = issubclass(self.SessionStore, UserSessionStore)
        if (
            iscoroutinefunction(self.get_response)
            and type(self).process_view is SessionMiddleware.process_view
        ):
            # In an async chain Django would run a sync process_view in a
            # worker thread, one hop per request; ours does no I/O. (A
            # subclass's own process_view is left as Django runs it.)
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    def process_request(self, request: HttpRequest) -> None:
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if self.tracks_clients:
            store = cast("UserSessionStore", self.SessionStore(session_key))
            store.bind_request(request)
            request.session = store
        else:
            # A misconfigured engine is reported by the system checks; keep
            # serving requests meanwhile.
            request.session = self.SessionStore(session_key)
        # A password changed by this request ends the user's other sessions
        # at once, and this one at the response unless it got the new hash.
        passwords.bind(request.session)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # After AuthenticationMiddleware set request.user: the user can come
        # from the session's own read (user_sessions.auth says when).
        if self.tracks_clients and app_settings.JOIN_USER:
            auth.install(request)

    async def _aprocess_view(self, request: HttpRequest, *view: Any) -> None:
        SessionMiddleware.process_view(self, request, *view)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        passwords.release()
        session = getattr(request, "session", None)
        if (
            isinstance(session, UserSessionStore)
            and not session.modified
            and not settings.SESSION_SAVE_EVERY_REQUEST
            and response.status_code < 500
            and session.activity_due()
            and not self._touch(session)
        ):
            # The session was revoked while this request ran: nothing is
            # written back, and as an empty session Django's code below
            # tells the browser to drop the cookie.
            session.clear()
            session._session_key = None
            session.modified = False
        if self.tracks_clients:
            hints.ask_for_hints(response)
        return super().process_response(request, response)

    @staticmethod
    def _touch(session: UserSessionStore) -> bool:
        """Record activity; a database error costs the record, not the response."""
        try:
            return session.touch()
        except DatabaseError:
            logger.warning("Could not record session activity", exc_info=True)
            return True
