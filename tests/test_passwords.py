"""A password change ends every session that would no longer authenticate, at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import (
    HASH_SESSION_KEY,
    aupdate_session_auth_hash,
    get_user_model,
    update_session_auth_hash,
)
from django.contrib.auth.tokens import default_token_generator
from django.core.management import call_command
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from user_sessions import passwords
from user_sessions.models import Session
from user_sessions.passwords import hash_verifies

# Sessions end when the password change commits: each test commits as a site does.
pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "/account/sessions/"


def sign_in(client: Client, user: Any, password: str = "secret-password") -> Client:
    response = client.post("/login/", {"username": user.username, "password": password})
    assert response.status_code == 302, response.content
    return client


def signed_in_user(client: Client) -> str:
    return client.get("/read/").content.decode()


def row_of(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies["sessionid"].value)


@pytest.fixture
def devices(
    engine: str, browser_factory: Callable[..., Client], user: Any
) -> tuple[Client, Client, Client]:
    """The user signed in on three devices; the first one changes the password."""
    return (
        sign_in(browser_factory(), user),
        sign_in(browser_factory(SAFARI_IPHONE, "198.51.100.7"), user),
        sign_in(browser_factory(FIREFOX_LINUX, "192.0.2.44"), user),
    )


def assert_only_left(user: Any, *clients: Client) -> None:
    keys = {client.cookies["sessionid"].value for client in clients}
    assert set(Session.objects.filter(user=user).values_list("session_key", flat=True)) == keys


def test_set_password_and_save_ends_every_session(devices, user) -> None:
    user.set_password("a-new-password")
    user.save()

    # Gone from the table at once, before any of them makes a request ...
    assert not Session.objects.filter(user=user).exists()
    # ... and from the cache: none of them is served from a cached copy.
    for client in devices:
        assert signed_in_user(client) == "user="


def test_password_change_view_keeps_the_changing_session(devices, user) -> None:
    changer, phone, laptop = devices
    before = row_of(changer)

    response = changer.post(
        "/password/change/",
        {
            "old_password": "secret-password",
            "new_password1": "a-new-password-42",
            "new_password2": "a-new-password-42",
        },
    )

    assert response.status_code == 302, response.content
    assert_only_left(user, changer)
    after = row_of(changer)
    # The session goes on: a new key, the same handle and sign-in time.
    assert after.session_key != before.session_key
    assert (after.handle, after.created_at) == (before.handle, before.created_at)
    assert signed_in_user(changer) == f"user={user.pk}"
    assert signed_in_user(phone) == "user="
    assert signed_in_user(laptop) == "user="
    # The widget lists exactly the sessions that still authenticate.
    page = changer.get(LIST_URL).content.decode()
    assert re.findall(r'<li [^>]*data-handle="([^"]+)"', page) == [after.handle]


def test_a_change_without_update_session_auth_hash_ends_the_changing_session_too(
    devices, user
) -> None:
    changer = devices[0]

    response = changer.post("/password/set-only/", {"password": "a-new-password-42"})

    assert response.status_code == 200
    assert not Session.objects.filter(user=user).exists()
    # The response told the browser to drop its cookie.
    assert response.cookies["sessionid"].value == ""
    assert signed_in_user(changer) == "user="


def test_password_reset_ends_every_session(devices, user, browser_factory) -> None:
    stranger = browser_factory(FIREFOX_LINUX, "192.0.2.99")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(get_user_model().objects.get(pk=user.pk))
    form_url = stranger.get(f"/reset/{uid}/{token}/")["Location"]

    response = stranger.post(
        form_url, {"new_password1": "a-new-password-42", "new_password2": "a-new-password-42"}
    )

    assert response.status_code == 302, response.content
    assert not Session.objects.filter(user=user).exists()
    for client in devices:
        assert signed_in_user(client) == "user="


def test_admin_password_form_ends_the_users_sessions_not_the_admins(
    devices, user, user_factory, browser_factory
) -> None:
    admin_user = user_factory(is_staff=True, is_superuser=True)
    admin = sign_in(browser_factory(), admin_user)

    response = admin.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "a-new-password-42", "password2": "a-new-password-42"},
    )

    assert response.status_code == 302, response.content
    assert not Session.objects.filter(user=user).exists()
    assert_only_left(admin_user, admin)
    assert signed_in_user(admin) == f"user={admin_user.pk}"


def test_changepassword_command_ends_every_session(devices, user, monkeypatch) -> None:
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a-new-password-42")

    call_command("changepassword", user.username, stdout=None)

    assert not Session.objects.filter(user=user).exists()


def test_other_users_and_other_saves_are_left_alone(devices, user, user_factory, browser_factory):
    other = user_factory()
    bystander = sign_in(browser_factory(), other)

    with CaptureQueriesContext(connection) as queries:
        user.first_name = "Alice"
        user.save()
        user.save(update_fields=["last_login"])
    table = Session._meta.db_table
    assert [q["sql"] for q in queries if table in q["sql"]] == []
    assert Session.objects.filter(user=user).count() == 3

    user.set_password("a-new-password-42")
    user.save()
    assert_only_left(other, bystander)


def test_hash_verifies_like_djangos_get_user(settings, user) -> None:
    settings.SECRET_KEY = "old-secret-key-for-this-test"
    old_hash = user.get_session_auth_hash()
    settings.SECRET_KEY = "new-secret-key-for-this-test"
    assert not hash_verifies(user, old_hash)
    settings.SECRET_KEY_FALLBACKS = ["old-secret-key-for-this-test"]
    assert hash_verifies(user, old_hash)
    assert hash_verifies(user, user.get_session_auth_hash())
    for missing in (None, "", 42):
        assert not hash_verifies(user, missing)


def test_sessions_signed_under_a_fallback_secret_survive_an_unrelated_change(
    settings, engine, browser_factory, user
) -> None:
    # A rotated SECRET_KEY: the session's hash verifies through the fallback,
    # as Django's get_user() accepts, so ending "unverifiable" sessions must
    # not sign it out when another session of the user changes the password
    # ... unless the password really changed, which changes every hash.
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    phone = sign_in(browser_factory(SAFARI_IPHONE), user)
    settings.SECRET_KEY = "rotated-secret-key-for-this-test"
    stored = Session.objects.get(session_key=phone.cookies["sessionid"].value)
    data = stored.get_decoded()
    assert hash_verifies(user, data[HASH_SESSION_KEY])

    get_user_model().objects.get(pk=user.pk).save()
    assert Session.objects.filter(user=user).count() == 1

    user.set_password("a-new-password-42")
    user.save()
    assert not Session.objects.filter(user=user).exists()


# -- async views, rolled-back changes (views below, wired by pytest.mark.urls) --------


async def async_change(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    user.set_password(request.POST["password"])  # type: ignore[union-attr]
    await user.asave()  # type: ignore[union-attr]
    if request.POST.get("update"):
        # Django's aupdate_session_auth_hash() compares request.user, which
        # an async view cannot evaluate: give it the user already fetched.
        request.user = user  # type: ignore[assignment]
        await aupdate_session_auth_hash(request, user)
    return HttpResponse("changed")


def change_in_transaction(request: HttpRequest) -> HttpResponse:
    # As under ATOMIC_REQUESTS: the change and update_session_auth_hash() in
    # one transaction; "fail" names where a later step fails.
    try:
        with transaction.atomic():
            request.user.set_password(request.POST["password"])  # type: ignore[union-attr]
            request.user.save()  # type: ignore[union-attr]
            if request.POST.get("fail") == "before_update":
                raise RuntimeError("a later step failed")
            update_session_auth_hash(request, request.user)  # type: ignore[arg-type]
            if request.POST.get("fail") == "after_update":
                raise RuntimeError("a later step failed")
    except RuntimeError:
        return HttpResponse("not changed")
    return HttpResponse("changed")


urlpatterns = [
    path("async/password/", async_change),
    path("password/in-transaction/", change_in_transaction),
    path("", include("tests.urls")),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("update", [True, False], ids=["update_hash", "no_update"])
def test_an_async_view_under_asgi_ends_the_other_sessions(devices, user, update: bool) -> None:
    changer, phone, laptop = devices
    before = row_of(changer)
    asgi = AsyncClient(HTTP_USER_AGENT="UA", REMOTE_ADDR="203.0.113.10")
    asgi.cookies["sessionid"] = changer.cookies["sessionid"].value

    data = {"password": "a-new-password-42", "update": "1" if update else ""}
    response = async_to_sync(asgi.post)("/async/password/", data)

    assert response.status_code == 200
    assert signed_in_user(phone) == "user="
    assert signed_in_user(laptop) == "user="
    rows = list(Session.objects.filter(user=user))
    if update:
        # Kept, re-keyed in place: the same handle under the new cookie.
        assert [row.handle for row in rows] == [before.handle]
        changer.cookies["sessionid"] = response.cookies["sessionid"].value
        assert signed_in_user(changer) == f"user={user.pk}"
    else:
        assert rows == []
    # The binding ended with the response.
    assert passwords._request_session.get() is None


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("fail", ["before_update", "after_update"])
def test_a_password_change_that_is_rolled_back_ends_no_session(engine, devices, user, fail) -> None:
    changer = devices[0]

    response = changer.post(
        "/password/in-transaction/", {"password": "a-new-password-42", "fail": fail}
    )

    if fail == "after_update":
        # The re-key was rolled back with the rest, so saving the session
        # under its new key finds no row: Django's SessionInterrupted (400),
        # as with Django's own stores. The browser keeps its cookie.
        assert response.status_code == 400
    else:
        assert response.content == b"not changed"
    user.refresh_from_db()
    assert user.check_password("secret-password")
    # The password did not change: every device stays signed in, the changer
    # too, under its old cookie (cached_db buries the old key only once the
    # re-key commits).
    for client in devices:
        assert signed_in_user(client) == f"user={user.pk}"


@pytest.mark.urls(__name__)
def test_a_change_committed_with_its_re_key_keeps_the_changing_session(devices, user) -> None:
    changer, phone, laptop = devices
    before = row_of(changer)

    response = changer.post("/password/in-transaction/", {"password": "a-new-password-42"})

    assert response.content == b"changed"
    # The session was re-keyed inside the transaction; the new key is spared.
    assert_only_left(user, changer)
    assert row_of(changer).handle == before.handle
    assert signed_in_user(changer) == f"user={user.pk}"
    assert signed_in_user(phone) == signed_in_user(laptop) == "user="
