"""No secret leaks: a whole sign-in, browse and revoke flow, with everything it emits inspected.

Every response (body, headers, cookies other than the session cookie itself),
every log record at DEBUG level from every logger, and every exception the
request handler saw are searched for every session key that existed during
the flow. Along the way a user agent carrying markup must render as text in
the widget, its dialog, the full page, the announcement and the admin.

Not covered, because it is Django's and the same for any session store:
``django.db.backends`` logs SQL with its parameters (session keys included)
when ``DEBUG = True``; the suite runs with ``DEBUG = False``, as production does.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote
from django.core.cache import cache
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse

from tests.conftest import FIREFOX_LINUX
from tests.geoip import SAO_PAULO_IP, ZWOLLE_IP
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>alert(1)</script>"
# ua-parser takes the first token of a CFNetwork agent as the app's name, so
# this one reaches the device label ("<script>alert(1)</script> on iOS").
HOSTILE_USER_AGENT = f"{PAYLOAD}/1.0 CFNetwork/1.0 Darwin/20.0"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/account/"}
CHANGELIST = reverse("admin:user_sessions_session_changelist")


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: dict[int, logging.LogRecord] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records[id(record)] = record


@pytest.fixture
def all_logs() -> Iterator[Recorder]:
    """Every record of every logger at DEBUG, also those that do not propagate."""
    recorder = Recorder()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(recorder)
    yield recorder
    for logger, level in levels:
        logger.setLevel(level)
        logger.removeHandler(recorder)


@pytest.fixture
def handled_exceptions() -> Iterator[list[BaseException]]:
    raised: list[BaseException] = []

    def collect(sender: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        while exc is not None and exc not in raised:
            raised.append(exc)
            exc = exc.__cause__ or exc.__context__

    got_request_exception.connect(collect)
    yield raised
    got_request_exception.disconnect(collect)


class Flow:
    """Runs requests and remembers every response and every session key seen."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, Any]] = []
        self.keys: set[str] = set()

    def remember_keys(self, *clients: Client) -> None:
        self.keys.update(Session.objects.values_list("session_key", flat=True))
        for client in clients:
            cookie = client.cookies.get(django_settings.SESSION_COOKIE_NAME)
            if cookie is not None and cookie.value:
                self.keys.add(cookie.value)

    def __call__(self, client: Client, method: str, url: str, *args: Any, **extra: Any) -> Any:
        self.remember_keys(client)
        response = getattr(client, method)(url, *args, **extra)
        self.responses.append((f"{method.upper()} {url}", response))
        self.remember_keys(client)
        return response


def sign_in(flow: Flow, client: Client, user: Any) -> Client:
    response = flow(
        client, "post", "/login/", {"username": user.username, "password": "secret-password"}
    )
    assert response.status_code == 302
    return client


def handle_of(client: Client) -> str:
    return Session.objects.get(session_key=client.cookies["sessionid"].value).handle


def test_a_whole_flow_leaks_no_session_key_and_escapes_user_agents(
    engine: str,
    settings: Any,
    geoip_settings: Any,
    user: Any,
    user_factory: Callable[..., Any],
    browser_factory: Callable[..., Client],
    all_logs: Recorder,
    handled_exceptions: list[BaseException],
):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0  # every request writes activity, too
    flow = Flow()
    laptop = sign_in(flow, browser_factory(ip=ZWOLLE_IP), user)
    phone = sign_in(flow, browser_factory(user_agent=HOSTILE_USER_AGENT, ip=SAO_PAULO_IP), user)
    tablet = sign_in(flow, browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.7"), user)
    root = user_factory(username="root", is_staff=True, is_superuser=True)
    admin = sign_in(flow, browser_factory(ip="192.0.2.200"), root)
    phone_handle, tablet_handle = handle_of(phone), handle_of(tablet)
    delete_phone = reverse("user_sessions:session_delete", args=[phone_handle])
    must_escape: list[Any] = []

    # The owner browses the widget.
    flow(laptop, "get", "/write/")
    must_escape.append(flow(laptop, "get", reverse("user_sessions:session_list")))
    must_escape.append(flow(laptop, "get", reverse("user_sessions:session_list"), **HTMX))
    must_escape.append(flow(laptop, "get", delete_phone))
    must_escape.append(flow(laptop, "get", delete_phone, **HTMX))
    flow(phone, "get", "/read/")

    # An operator looks at the admin.
    for query in ["", "?q=alice", "?status=active", "?owner=mine", f"?q={SAO_PAULO_IP}"]:
        response = flow(admin, "get", CHANGELIST + query)
        assert response.status_code == 200
        if query != "?owner=mine":
            must_escape.append(response)
    for handle in (phone_handle, handle_of(laptop)):
        change = reverse("admin:user_sessions_session_change", args=[quote(handle)])
        response = flow(admin, "get", change)
        assert response.status_code == 200
        if handle == phone_handle:
            must_escape.append(response)

    # The owner signs the phone out with htmx; the announcement names it.
    response = flow(laptop, "post", delete_phone, **HTMX)
    assert response.status_code == 200
    must_escape.append(response)
    assert flow(phone, "get", "/read/").content == b"user="

    # The operator signs the tablet out; the owner signs out everything else, then leaves.
    response = flow(
        admin,
        "post",
        CHANGELIST,
        {"action": "revoke_sessions", ACTION_CHECKBOX_NAME: [tablet_handle], "index": "0"},
        follow=True,
    )
    assert response.status_code == 200
    assert flow(tablet, "get", "/read/").content == b"user="
    tablet = sign_in(flow, tablet, user)
    response = flow(laptop, "post", reverse("user_sessions:session_delete_other"), follow=True)
    assert response.status_code == 200
    assert flow(tablet, "get", "/read/").content == b"user="

    # What gets logged: a 404, a CSRF refusal, a session revoked mid-request, corrupt data.
    assert flow(laptop, "post", delete_phone).status_code == 404
    forger = Client(enforce_csrf_checks=True)
    forger.cookies[django_settings.SESSION_COOKIE_NAME] = laptop.cookies["sessionid"].value
    assert flow(forger, "post", reverse("user_sessions:session_delete_other")).status_code == 403
    kiosk = sign_in(flow, browser_factory(ip="192.0.2.201"), user)
    assert flow(kiosk, "get", "/revoked/write/").status_code == 400
    kiosk = sign_in(flow, kiosk, user)
    Session.objects.filter(session_key=kiosk.cookies["sessionid"].value).update(
        session_data="corrupt"
    )
    cache.clear()
    assert flow(kiosk, "get", "/read/").content == b"user="

    flow(laptop, "post", "/logout/")
    flow(admin, "post", "/logout/")

    keys = flow.keys
    assert len(keys) >= 7  # laptop, phone, tablet (twice), admin, kiosk (twice)
    for what, response in flow.responses:
        shown = [response.content.decode("utf-8", "replace")]
        shown += [f"{name}: {value}" for name, value in response.items()]
        shown += [
            morsel.OutputString()
            for name, morsel in response.cookies.items()
            if name != django_settings.SESSION_COOKIE_NAME
        ]
        for redirect, _status in getattr(response, "redirect_chain", []):
            shown.append(redirect)
        text = "\n".join(shown)
        for key in keys:
            assert key not in text, what
        assert PAYLOAD not in text, what
    for response in must_escape:
        assert ESCAPED in response.content.decode(), response.request["PATH_INFO"]

    assert handled_exceptions == []
    logged = {record.name for record in all_logs.records.values()}
    # The capture works, and saw the records most likely to carry a key.
    assert {"django.request", "django.security.csrf", "django.security.SuspiciousSession"} <= logged
    for record in all_logs.records.values():
        parts = [record.getMessage(), repr(record.args), record.stack_info or ""]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        text = "\n".join(parts)
        for key in keys:
            assert key not in text, (record.name, record.getMessage())
