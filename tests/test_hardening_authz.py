"""Every URL the package serves, walked as strangers and with forged requests.

The URLs come from ``user_sessions.urls`` itself, each reversed with a real
handle, so a view added later is covered without touching this module. For
each: nothing of another user's is shown, nothing of theirs changes, no state
changes on GET or HEAD, and no POST gets through without a valid CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

PACKAGE_URL_NAMES = {"session_list", "session_delete", "session_delete_other"}
# Not a page but an event stream (user_sessions.stream): GET only, 403 without
# a live session instead of a sign-in redirect, 204 while push is off.
STREAM = "session_stream"
# The JSON API (user_sessions.api): 401 as JSON instead of a sign-in redirect.
API = {"api_session_list", "api_session_others", "api_session"}
# Open to anyone: the API's description, and the "This wasn't me" pages, which
# a person reaches from a mail without being signed in (the token decides).
PUBLIC = {"api_schema", "report", "report_done"}
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/account/"}
# Markers of the victim's sessions that no one else's response may carry.
VICTIM_IP = "192.0.2.77"
VICTIM_DEVICE = "Safari on iPhone"

Snapshot = set[tuple[Any, ...]]


def package_urls(handle: str) -> Iterator[tuple[str, str]]:
    """(name, url) for every pattern of ``user_sessions.urls``, path arguments set to ``handle``."""
    for pattern in get_resolver("user_sessions.urls").url_patterns:
        # An include() here would have to be walked too: fail rather than skip it.
        assert isinstance(pattern, URLPattern), pattern
        assert pattern.name, f"unnamed pattern {pattern}: it cannot be reversed and checked"
        kwargs = dict.fromkeys(pattern.pattern.converters, handle)
        yield pattern.name, reverse(f"user_sessions:{pattern.name}", kwargs=kwargs)


def test_the_walk_covers_every_view_the_package_serves():
    names = {name for name, _url in package_urls("x" * 22)}
    assert names >= PACKAGE_URL_NAMES
    assert len(names) == len(get_resolver("user_sessions.urls").url_patterns)


def snapshot(user: Any) -> Snapshot:
    return set(
        Session.objects.filter(user=user).values_list(
            "session_key", "handle", "session_data", "expire_date", "ip", "user_agent"
        )
    )


def sign_in(client: Client, user: Any) -> Client:
    response = client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert response.status_code == 302
    return client


@pytest.fixture
def victim(user: Any, browser_factory: Callable[..., Client]) -> dict[str, Any]:
    """Alice signed in twice; one handle goes into URLs, the other must never show."""
    phone = sign_in(browser_factory(user_agent=SAFARI_IPHONE, ip=VICTIM_IP), user)
    laptop = sign_in(browser_factory(user_agent=SAFARI_IPHONE, ip=VICTIM_IP), user)
    rows = {
        row.session_key: row for row in Session.objects.filter(user=user).order_by("created_at")
    }
    phone_row = rows[phone.cookies[django_settings.SESSION_COOKIE_NAME].value]
    laptop_row = rows[laptop.cookies[django_settings.SESSION_COOKIE_NAME].value]
    return {"user": user, "phone": phone, "in_url": phone_row, "unseen": laptop_row}


def assert_shows_nothing_of(victim: dict[str, Any], response: Any) -> None:
    shown = response.content.decode("utf-8", "replace") + "\n".join(
        f"{name}: {value}" for name, value in response.items()
    )
    secrets = [
        victim["in_url"].session_key,
        victim["unseen"].session_key,
        victim["unseen"].handle,  # never put in a URL: it can only come from the database
        VICTIM_IP,
        VICTIM_DEVICE,
        victim["user"].username,
    ]
    for secret in secrets:
        assert secret not in shown, (secret, response.status_code)


REQUESTS = [
    ("get", {}),
    ("get", HTMX),
    ("head", {}),
    ("post", {}),
    ("post", HTMX),
    ("put", {}),
    ("delete", {}),
]


def test_anonymous_visitors_get_nothing_and_change_nothing(victim: dict[str, Any]):
    before = snapshot(victim["user"])
    for name, url in package_urls(victim["in_url"].handle):
        for method, headers in REQUESTS:
            response = getattr(Client(), method)(url, **headers)
            if name == STREAM:
                assert response.status_code in (403, 405), (name, method, response.status_code)
            elif name in API:
                assert response.status_code in (401, 405), (name, method, response.status_code)
                assert response["Content-Type"] == "application/json"
            elif name in PUBLIC:
                # The walk's "token" is a handle: never a valid report link.
                expected = {"report": 400}.get(name, 200) if method in ("get", "head") else 405
                if name == "report" and method == "post":
                    expected = 400
                assert response.status_code == expected, (name, method, response.status_code)
            elif headers and response.status_code == 200:
                # htmx: the whole tab goes to the sign-in page, nothing is swapped in.
                assert response["HX-Redirect"].startswith(django_settings.LOGIN_URL)
                assert response.content == b""
            else:
                assert response.status_code == 302, (name, method, response.status_code)
                assert response["Location"].startswith(django_settings.LOGIN_URL)
            assert_shows_nothing_of(victim, response)
            assert snapshot(victim["user"]) == before, (name, method)
    assert victim["phone"].get("/read/").content == f"user={victim['user'].pk}".encode()


def test_another_user_gets_nothing_and_changes_nothing_of_the_victims(
    victim: dict[str, Any], user_factory: Callable[..., Any], browser_factory: Any
):
    bob = user_factory(username="bob")
    stranger = sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.40"), bob)
    before = snapshot(victim["user"])
    for name, url in package_urls(victim["in_url"].handle):
        for method, headers in REQUESTS:
            response = getattr(stranger, method)(url, **headers)
            # 415: the API takes JSON only, and the walk sends a form.
            assert response.status_code in (200, 204, 302, 400, 404, 405, 415), (name, method)
            assert_shows_nothing_of(victim, response)
            assert snapshot(victim["user"]) == before, (name, method)
            assert "HX-Redirect" not in response, (name, method)
            if response.status_code == 302:
                assert not response["Location"].startswith(django_settings.LOGIN_URL)
    # Another user's handle answers exactly as a handle that never existed.
    unknown = reverse("user_sessions:session_delete", kwargs={"handle": "x" * 22})
    for method, headers in REQUESTS:
        mine = getattr(stranger, method)(unknown, **headers)
        theirs = getattr(stranger, method)(
            reverse("user_sessions:session_delete", kwargs={"handle": victim["in_url"].handle}),
            **headers,
        )
        assert theirs.status_code == mine.status_code, (method, headers)
        assert theirs.has_header("HX-Redirect") == mine.has_header("HX-Redirect")
    assert snapshot(victim["user"]) == before
    assert victim["phone"].get("/read/").content == f"user={victim['user'].pk}".encode()


def test_a_handle_guessed_from_a_session_key_finds_nothing(
    victim: dict[str, Any], browser_factory: Any, user_factory: Callable[..., Any]
):
    """A session key, or anything but the handle, in the handle's place is a 404."""
    owner = victim["phone"]
    before = snapshot(victim["user"])
    # Not a case variant of a handle: MariaDB compares case-insensitively, and
    # the owner may address their own session either way.
    for forged in [victim["unseen"].session_key, victim["unseen"].session_key[:22], "%00", "..%2F"]:
        url = reverse("user_sessions:session_delete", kwargs={"handle": forged})
        assert owner.get(url).status_code == 404
        assert owner.post(url).status_code == 404
    assert snapshot(victim["user"]) == before


# -- CSRF and methods -----------------------------------------------------------------


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


@pytest.fixture
def strict_owner(user: Any, browser_factory: Any) -> dict[str, Any]:
    """Alice on a browser whose requests are checked for CSRF as a real browser's are."""
    sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.3"), user)  # the target
    laptop = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=SAFARI_IPHONE, REMOTE_ADDR=VICTIM_IP)
    login_page = laptop.get("/login/")
    laptop.post(
        "/login/",
        {
            "username": user.username,
            "password": "secret-password",
            "csrfmiddlewaretoken": csrf_token_from(login_page.content.decode()),
        },
    )
    key = laptop.cookies[django_settings.SESSION_COOKIE_NAME].value
    other = Session.objects.filter(user=user).exclude(session_key=key).get()
    page = laptop.get(reverse("user_sessions:session_list")).content.decode()
    return {"user": user, "laptop": laptop, "target": other, "token": csrf_token_from(page)}


def test_get_and_head_change_nothing_anywhere(strict_owner: dict[str, Any]):
    laptop, user = strict_owner["laptop"], strict_owner["user"]
    own = Session.objects.get(session_key=laptop.cookies["sessionid"].value)
    before = snapshot(user)
    for handle in (strict_owner["target"].handle, own.handle):
        for name, url in package_urls(handle):
            for method, headers in [("get", {}), ("get", HTMX), ("head", {}), ("head", HTMX)]:
                response = getattr(laptop, method)(url, **headers)
                if name == STREAM:
                    expected = 204 if method == "get" else 405
                elif name in ("api_session_others", "api_session"):
                    expected = 405  # DELETE or POST only
                elif name == "report":
                    expected = 400  # the walk's handle is no signed token
                else:
                    expected = 200
                assert response.status_code == expected, (name, method)
                assert snapshot(user) == before, (name, method)


def forged_posts(token: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(what, form data, headers) of POSTs that must be refused."""
    for kind, headers in [("plain", {}), ("htmx", HTMX)]:
        yield f"{kind}: no token", {}, headers
        yield f"{kind}: garbage token", {"csrfmiddlewaretoken": "x" * 64}, headers
        yield f"{kind}: garbage header", {}, {**headers, "HTTP_X_CSRFTOKEN": "x" * 32}
        yield (
            f"{kind}: valid token, cross-site origin",
            {"csrfmiddlewaretoken": token},
            {**headers, "HTTP_ORIGIN": "https://evil.example"},
        )


def test_posts_without_a_valid_csrf_token_are_refused(
    strict_owner: dict[str, Any], browser_factory: Any, user_factory: Callable[..., Any]
):
    laptop, user = strict_owner["laptop"], strict_owner["user"]
    # Another browser's perfectly valid token is no token for this one.
    elsewhere = Client(enforce_csrf_checks=True)
    foreign_token = csrf_token_from(elsewhere.get("/login/").content.decode())
    before = snapshot(user)
    posts = [
        *forged_posts(strict_owner["token"]),
        ("another browser's token", {"csrfmiddlewaretoken": foreign_token}, {}),
        ("another browser's token, htmx", {}, {**HTMX, "HTTP_X_CSRFTOKEN": foreign_token}),
    ]
    for name, url in package_urls(strict_owner["target"].handle):
        for what, data, headers in posts:
            response = laptop.post(url, data, **headers)
            if response.status_code == 405:
                # Refused before any check because the view takes no POST at all.
                assert "POST" not in response["Allow"], (name, what)
            else:
                assert response.status_code == 403, (name, what, response.status_code)
            assert snapshot(user) == before, (name, what)
    assert snapshot(user) == before


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_the_same_posts_with_a_valid_token_do_change_things(
    strict_owner: dict[str, Any], htmx: bool
):
    """The counterpart of the test above, so its 403s mean something."""
    laptop, target = strict_owner["laptop"], strict_owner["target"]
    url = reverse("user_sessions:session_delete", kwargs={"handle": target.handle})
    if htmx:
        response = laptop.post(url, HTTP_X_CSRFTOKEN=strict_owner["token"], **HTMX)
        assert response.status_code == 200
    else:
        response = laptop.post(url, {"csrfmiddlewaretoken": strict_owner["token"]})
        assert response.status_code == 302
    assert not Session.objects.filter(handle=target.handle).exists()
