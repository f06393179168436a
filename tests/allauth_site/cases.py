"""What docs/howto/upgrading.md promises a site that signs people in with django-allauth.

Run by tests/test_allauth.py under ``tests.allauth_site.settings``: allauth's
own login, password change and logout views, with this package's middleware,
store and widget in place of allauth's usersessions.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import CHROME_WINDOWS, FIREFOX_LINUX
from user_sessions.events import Reason
from user_sessions.models import EndedSession, Session
from user_sessions.signals import session_created

pytestmark = pytest.mark.django_db

PASSWORD = "an-allauth-password-1"


@pytest.fixture
def ann() -> Any:
    return get_user_model().objects.create_user("ann", password=PASSWORD)


def signed_in(user_agent: str, ip: str, password: str = PASSWORD) -> Client:
    browser = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    response = browser.post("/accounts/login/", {"login": "ann", "password": password})
    assert response.status_code == 302, response.content[:500]
    return browser


def who(browser: Client) -> bytes:
    return bytes(browser.get("/read/").content)


def test_allauths_sign_in_records_the_device_and_sends_session_created(ann: Any) -> None:
    heard: list[Any] = []

    def receiver(sender: Any, session: Any, request: Any, **kwargs: Any) -> None:
        heard.append(session)

    session_created.connect(receiver)
    try:
        laptop = signed_in(FIREFOX_LINUX, "203.0.113.5")
    finally:
        session_created.disconnect(receiver)
    row = Session.objects.get(user=ann)
    assert (row.ip, row.user_agent) == ("203.0.113.5", FIREFOX_LINUX)
    assert [session.handle for session in heard] == [row.handle]
    assert who(laptop) == f"user={ann.pk}".encode()
    page = laptop.get("/account/sessions/").content.decode()
    assert "Firefox on Linux" in page and "This device" in page


def test_allauths_password_change_signs_the_other_devices_out(
    ann: Any, django_capture_on_commit_callbacks: Any
) -> None:
    laptop = signed_in(FIREFOX_LINUX, "203.0.113.5")
    phone = signed_in(CHROME_WINDOWS, "198.51.100.7")
    handle = Session.objects.get(session_key=laptop.cookies["sessionid"].value).handle
    new_password = "a-new-allauth-password-2"
    with django_capture_on_commit_callbacks(execute=True):
        response = laptop.post(
            "/accounts/password/change/",
            {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password},
        )
    assert response.status_code == 302, response.content[:500]
    # allauth keeps the changing session (update_session_auth_hash): same handle.
    assert who(laptop) == f"user={ann.pk}".encode()
    assert Session.objects.get(session_key=laptop.cookies["sessionid"].value).handle == handle
    assert who(phone) == b"user="
    assert Session.objects.filter(user=ann).count() == 1
    assert EndedSession.objects.get(user=ann).reason == Reason.PASSWORD_CHANGED


def test_allauths_logout_ends_the_session_as_signed_out(
    ann: Any, django_capture_on_commit_callbacks: Any
) -> None:
    laptop = signed_in(FIREFOX_LINUX, "203.0.113.5")
    with django_capture_on_commit_callbacks(execute=True):
        response = laptop.post("/accounts/logout/")
    assert response.status_code == 302
    assert who(laptop) == b"user="
    assert not Session.objects.filter(user=ann).exists()
    assert EndedSession.objects.get(user=ann).reason == Reason.LOGOUT
