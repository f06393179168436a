"""The widget's live feed: Server-Sent Events for one signed-in session.

The stream tells the widget *that* the user's list changed (``changed``, with
the handles concerned); the widget then fetches the list partial as its
refresh does, so the no-flicker and focus rules live in one place. When the
stream's own session ends it says ``signed-out`` (with the sign-in URL) and
closes. Under WSGI, with push off, or while the broker cannot be reached the
stream answers without a feed and the widget keeps polling.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connections, router
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse

from user_sessions.conf import app_settings
from user_sessions.models import get_session_model
from user_sessions.push import LOST, Hub, get_hub
from user_sessions.widget import login_url, safe_next

if TYPE_CHECKING:
    from user_sessions.events import SessionEvent

Response = HttpResponse | StreamingHttpResponse


def offers_stream(request: HttpRequest | None) -> bool:
    """Whether a page rendered for ``request`` can listen: push on, served over ASGI."""
    return app_settings.PUSH is not None and isinstance(request, ASGIRequest)


def stream_url(request: HttpRequest | None) -> str:
    """The stream's URL for the widget's ``data-us-stream-url``; "" means poll only."""
    return reverse("user_sessions:session_stream") if offers_stream(request) else ""


def _release_connection() -> None:
    # A stream lives for hours: it must not hold a database connection
    # between its checks (500 streams would be 500 connections).
    connection = connections[router.db_for_read(get_session_model())]
    if not connection.in_atomic_block:
        connection.close()


def _own_session(request: HttpRequest) -> tuple[str, str, str] | None:
    """(user id, handle, session key) of the request's live session, else ``None``."""
    try:
        user = request.user
        key = request.session.session_key
        if not user.is_authenticated or not key:
            return None
        handle = (
            get_session_model()
            .objects.active()
            .filter(session_key=key, user=user)
            .values_list("handle", flat=True)
            .first()
        )
        return None if handle is None else (str(user.pk), handle, key)
    finally:
        _release_connection()


def _is_live(session_key: str) -> bool:
    try:
        return bool(get_session_model().objects.active().filter(session_key=session_key).exists())
    finally:
        _release_connection()


def _release_request_thread() -> None:
    """Shut down the thread Django's ASGI handler keeps for this request's sync code.

    Under ASGI each request gets a thread for its sync middleware and views
    (asgiref's ``ThreadSensitiveContext``), kept until the request ends: for
    a stream, hours of an idle thread, one per open tab. Once the response
    streams, nothing of the request needs it; a later thread-sensitive call
    would make a new one (the stream's own checks run elsewhere, see
    :func:`_in_fresh_context`).
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if context is None or executors is None:
        return
    executor = executors.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)


async def _in_fresh_context(check: Callable[[str], bool], session_key: str) -> bool:
    if getattr(AsyncToSync.executors, "current", None) is not None:
        # Called from sync code through async_to_sync (a test client): its
        # thread, with its database connection and transaction, is the one.
        return await sync_to_async(check)(session_key)
    # A shared worker thread and an empty context: Django makes a database
    # connection of its own there (the request's belongs to its thread),
    # which the check closes again.
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, contextvars.Context().run, check, session_key)


#: Every this many quiet heartbeats the stream checks its session anyway: one
#: that expired (or ended without an event) is noticed within minutes.
RECHECK_HEARTBEATS = 20


def message(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def feed(
    hub: Hub,
    user_id: str,
    handle: str,
    session_key: str,
    sign_in_url: str,
    heartbeat: int,
    max_streams: int | None = None,
) -> AsyncIterator[bytes]:
    queue = hub.open(user_id)
    _release_request_thread()
    try:
        if max_streams is not None and hub.count(user_id) > max_streams:
            # Asked for together, several streams passed the view's check
            # before any had opened: the ones over the bound end unsent (the
            # browser's retry then gets the 429).
            return
        # "ready" once subscribed: whatever happened before, the widget's
        # refresh on "ready" catches up with.
        yield b"retry: 2000\n" + message("ready", {})
        quiet = 0
        while True:
            try:
                batch: list[SessionEvent] = await asyncio.wait_for(queue.get(), heartbeat)
            except asyncio.TimeoutError:
                quiet += 1
                if quiet % RECHECK_HEARTBEATS == 0 and not await _in_fresh_context(
                    _is_live, session_key
                ):
                    yield message("signed-out", {"url": sign_in_url})
                    return
                yield b": heartbeat\n\n"
                continue
            if batch is LOST:
                return
            concerns_this = any(e.handle == handle and e.kind == "ended" for e in batch)
            # Only the database says whether this session really ended.
            if concerns_this and not await _in_fresh_context(_is_live, session_key):
                yield message("signed-out", {"url": sign_in_url})
                return
            yield message("changed", {"handles": sorted({event.handle for event in batch})})
    finally:
        hub.close(user_id, queue)


async def session_stream(request: HttpRequest) -> Response:
    """GET only: the event stream of the request's own session.

    204 without a feed (push off, or not ASGI: EventSource stops asking),
    403 for a request without a live session, 429 over the per-user limit,
    503 while the broker cannot be reached.
    """
    if request.method != "GET":
        # Not even HEAD: it would open (and hold) a stream to send nothing.
        return HttpResponse(status=405, headers={"Allow": "GET"})
    # Who asks comes first: without a live session the answer is 403 whether
    # or not push is on, as the other views refuse whatever their settings.
    owner = await sync_to_async(_own_session)(request)
    if owner is None:
        return no_store(HttpResponse(status=403))
    settings = app_settings.PUSH
    if settings is None or not isinstance(request, ASGIRequest):
        return no_store(HttpResponse(status=204))
    user_id, handle, session_key = owner
    hub = get_hub()
    assert hub is not None  # push is on
    if hub.count(user_id) >= settings.max_streams:
        return no_store(HttpResponse(status=429, headers={"Retry-After": "60"}))
    if not await hub.start():
        return no_store(HttpResponse(status=503, headers={"Retry-After": "10"}))
    sign_in_url = login_url(safe_next(request, request.GET.get("next")))
    response = StreamingHttpResponse(
        feed(
            hub,
            user_id,
            handle,
            session_key,
            sign_in_url,
            settings.heartbeat,
            settings.max_streams,
        ),
        content_type="text/event-stream",
    )
    # Proxies (nginx) must pass every message on at once.
    response["X-Accel-Buffering"] = "no"
    return no_store(response)


def no_store(response: Response) -> Response:
    response["Cache-Control"] = "no-cache, no-store"
    return response


__all__ = ["offers_stream", "session_stream", "stream_url"]
