from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CHROME_WINDOWS
from user_sessions.models import Session
from user_sessions.signals import session_created

pytestmark = pytest.mark.django_db


def test_session_created_is_sent_on_sign_in_with_device(engine: str, browser_factory, user):
    received: list[dict[str, Any]] = []

    def listener(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    session_created.connect(listener)
    try:
        client = browser_factory()
        client.post("/login/", {"username": user.username, "password": "secret-password"})
    finally:
        session_created.disconnect(listener)
    assert len(received) == 1
    event = received[0]
    assert event["user"] == user
    assert isinstance(event["session"], Session)
    assert event["session"].user_id == user.pk
    assert event["session"].ip == "203.0.113.10"
    assert event["device"] == "Chrome on Windows"
    assert event["request"].path == "/login/"


def test_owner_is_set_on_sign_in_and_gone_on_sign_out(engine: str, auth_client, user):
    assert Session.objects.get().user == user
    auth_client.post("/logout/")
    assert not Session.objects.filter(user=user).exists()


def test_failed_sign_in_sends_nothing_and_stores_nothing(engine: str, browser_factory, user):
    received: list[Any] = []
    session_created.connect(received.append)
    try:
        client = browser_factory()
        client.post("/login/", {"username": user.username, "password": "wrong"})
    finally:
        session_created.disconnect(received.append)
    assert received == []
    assert not Session.objects.filter(user=user).exists()


def test_without_listeners_signing_in_reads_no_session_row_back(browser_factory, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    table = Session._meta.db_table
    client = browser_factory()
    with CaptureQueriesContext(connection) as queries:
        client.post("/login/", {"username": user.username, "password": "secret-password"})
    on_sessions = [q["sql"].split()[0].upper() for q in queries if table in q["sql"]]
    # One SELECT only: Django's check that the new key is unused.
    assert on_sessions.count("SELECT") == 1
    assert Session.objects.get().user == user


def test_sign_in_records_the_sign_in_requests_client(engine: str, browser_factory, user):
    # An anonymous visit from one address and browser, then, inside the
    # activity interval, a sign-in from another: the signed-in row (and the
    # signal a "new sign-in" alert would use) must describe the sign-in.
    from tests.conftest import FIREFOX_LINUX

    received: list[dict[str, Any]] = []

    def listener(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    client = browser_factory(FIREFOX_LINUX, "192.0.2.1")
    client.get("/write/")
    anonymous = Session.objects.get()
    assert (anonymous.ip, anonymous.user_agent) == ("192.0.2.1", FIREFOX_LINUX)

    client.defaults.update(HTTP_USER_AGENT=CHROME_WINDOWS, REMOTE_ADDR="203.0.113.10")
    session_created.connect(listener)
    try:
        client.post("/login/", {"username": user.username, "password": "secret-password"})
    finally:
        session_created.disconnect(listener)

    row = Session.objects.get(user=user)
    assert (row.ip, row.user_agent) == ("203.0.113.10", CHROME_WINDOWS)
    assert row.last_activity >= row.created_at
    assert row.handle != anonymous.handle
    assert [(event["session"].ip, event["device"]) for event in received] == [
        ("203.0.113.10", "Chrome on Windows")
    ]


def test_session_created_names_the_device_as_the_widget_does(engine: str, browser_factory, user):
    # With client hints the widget says "Windows 11"; a new-sign-in alert
    # built on the signal must say the same.
    received: list[dict[str, Any]] = []

    def listener(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    client = browser_factory(
        HTTP_SEC_CH_UA_PLATFORM='"Windows"',
        HTTP_SEC_CH_UA_PLATFORM_VERSION='"15.0.0"',
        HTTP_SEC_CH_UA_MOBILE="?0",
        HTTP_SEC_CH_UA_FULL_VERSION_LIST=(
            '"Not-A.Brand";v="99.0.0.0", "Chromium";v="131.0.6778.86", '
            '"Google Chrome";v="131.0.6778.86"'
        ),
    )
    session_created.connect(listener)
    try:
        client.post("/login/", {"username": user.username, "password": "secret-password"})
    finally:
        session_created.disconnect(listener)
    assert [event["device"] for event in received] == ["Chrome on Windows 11"]
    assert Session.objects.get(user=user).device == "Chrome on Windows 11"
