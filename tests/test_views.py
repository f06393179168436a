from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from user_sessions import widget
from user_sessions.models import Session
from user_sessions.views import SessionDeleteOtherView

LIST_URL = "/account/sessions/"
OTHERS_URL = "/account/sessions/others/delete/"
HTMX = {"HTTP_HX_REQUEST": "true"}

# HTML through roles, text and attributes ---------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self) -> Iterator[Element]:
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.iter()

    def find_all(
        self, tag: str | None = None, text: str | None = None, **attrs: str
    ) -> list[Element]:
        """Elements by tag, exact (whitespace-normalised) text and attributes.

        Attribute names use ``_`` for ``-`` (``class_`` for ``class``); ``True``
        only asks for presence.
        """
        wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}
        return [
            el
            for el in self.iter()
            if (tag is None or el.tag == tag)
            and (text is None or el.text == text)
            and all(
                name in el.attrs and (value is True or el.attrs[name] == value)
                for name, value in wanted.items()
            )
        ]

    def find(self, tag: str | None = None, text: str | None = None, **attrs: Any) -> Element:
        found = self.find_all(tag, text, **attrs)
        assert len(found) == 1, f"expected one <{tag}> {text!r} {attrs}, found {len(found)}"
        return found[0]

    def buttons(self, name: str) -> list[Element]:
        return self.find_all("button", text=name)

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(content: bytes | str) -> Element:
    builder = _TreeBuilder()
    builder.feed(content.decode() if isinstance(content, bytes) else content)
    builder.close()
    return builder.root


def rows(page: Element) -> list[Element]:
    return page.find_all("li", data_handle=True)


def row_handles(page: Element) -> list[str]:
    return [row.attrs["data-handle"] for row in rows(page)]


# Sessions and browsers ----------------------------------------------------------------


def session_of(client: Client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def sign_in(client: Client, user: AbstractBaseUser, password: str = "secret-password") -> Client:
    response = client.post("/login/", {"username": user.get_username(), "password": password})
    assert response.status_code == 302
    return client


@pytest.fixture
def phone(browser_factory: Callable[..., Client], user: AbstractBaseUser) -> Client:
    """The same user, signed in on a second device."""
    return sign_in(browser_factory(user_agent=SAFARI_IPHONE, ip="198.51.100.7"), user)


@pytest.fixture
def laptop(browser_factory: Callable[..., Client], user: AbstractBaseUser) -> Client:
    return sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="192.0.2.44"), user)


def signed_in_user(client: Client) -> str:
    return client.get("/read/").content.decode()


def assert_no_session_keys(*responses: HttpResponse) -> None:
    """No session key (of any session, live or ended) in any body or header.

    The session cookie is the one place a key belongs, so ``Set-Cookie`` is
    left out; everything else a page shows could be copied into a cookie.
    """
    keys = list(Session.objects.values_list("session_key", flat=True))
    keys += list(_seen_keys)
    assert keys
    for response in responses:
        body = response.content.decode()
        headers = " ".join(
            f"{name}: {value}"
            for name, value in response.headers.items()
            if name.lower() != "set-cookie"
        )
        for key in keys:
            assert key not in body
            assert key not in headers


_seen_keys: set[str] = set()


@pytest.fixture(autouse=True)
def _forget_seen_keys() -> Iterator[None]:
    _seen_keys.clear()
    yield
    _seen_keys.clear()


def remember_keys() -> None:
    """Note the keys alive now, so a scan after they ended still looks for them."""
    _seen_keys.update(Session.objects.values_list("session_key", flat=True))


def bulk_sessions(user: AbstractBaseUser, count: int, *, minutes_ago: int = 10) -> list[Session]:
    """``count`` live sessions of ``user``, the first most recently active, a minute apart.

    All older than any session a test signs in, so those come first.
    """
    now = timezone.now()
    sessions = [
        Session(
            session_key=f"bulk{n:028d}{next(_bulk_batch):08d}",
            session_data="",
            expire_date=now + datetime.timedelta(days=1),
            user=user,
            user_agent=SAFARI_IPHONE,
            ip=f"198.51.{n // 250 % 250}.{n % 250 + 1}",
            created_at=now - datetime.timedelta(days=1),
            last_activity=now - datetime.timedelta(minutes=minutes_ago + n),
        )
        for n in range(count)
    ]
    Session.objects.bulk_create(sessions, batch_size=1000)
    return sessions


_bulk_batch = itertools.count()


@pytest.fixture
def capped(
    settings: Any, monkeypatch: pytest.MonkeyPatch, user: AbstractBaseUser
) -> Callable[..., list[Session]]:
    """Caps the widget at ``limit`` rows (``page_size`` a page behind "Show all") and gives
    ``user`` ``count`` more sessions from :func:`bulk_sessions`."""

    def make(count: int, *, limit: int, page_size: int | None = None) -> list[Session]:
        settings.USER_SESSIONS_WIDGET_LIMIT = limit
        if page_size is not None:
            monkeypatch.setattr(widget, "PAGE_SIZE", page_size)
        return bulk_sessions(user, count)

    return make


# The list -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_page_is_a_full_page(auth_client: Client, phone: Client) -> None:
    response = auth_client.get(LIST_URL)

    assert response.status_code == 200
    assert response["Vary"].startswith("HX-Request")
    assert "no-store" in response["Cache-Control"]
    page = parse(response.content)
    assert page.find("html")
    section = page.find("section", data_us_widget=True)
    heading = page.find("h1", text="Your devices")
    assert section.attrs["aria-labelledby"] == heading.attrs["id"]
    assert section.attrs["data-us-refresh-url"] == LIST_URL
    assert section.attrs["data-us-refresh-interval"] == "30"
    assert len(rows(page)) == 2
    assert_no_session_keys(response)


@pytest.mark.django_db
def test_list_partial_for_htmx(auth_client: Client, phone: Client) -> None:
    response = auth_client.get(LIST_URL, **HTMX)

    assert response.status_code == 200
    assert response["Vary"].startswith("HX-Request")
    page = parse(response.content)
    assert page.find_all("html") == []
    assert page.find_all("section") == []
    assert page.find("div", id="us-list", data_us_list=True)
    assert row_handles(page) == [session_of(auth_client).handle, session_of(phone).handle]
    assert_no_session_keys(response)


@pytest.mark.django_db
def test_boosted_request_gets_the_page(auth_client: Client) -> None:
    response = auth_client.get(LIST_URL, HTTP_HX_BOOSTED="true", **HTMX)

    assert parse(response.content).find("section", data_us_widget=True)


@pytest.mark.django_db
def test_current_session_first_and_marked(
    auth_client: Client, phone: Client, laptop: Client
) -> None:
    Session.objects.filter(pk=session_of(auth_client).pk).update(
        last_activity=timezone.now() - datetime.timedelta(hours=3)
    )

    page = parse(auth_client.get(LIST_URL).content)

    first, *others = rows(page)
    assert first.attrs["data-handle"] == session_of(auth_client).handle
    assert first.find("span", text="This device")
    assert first.find("time", text="Active now")
    assert [row.attrs["data-handle"] for row in others] == [
        session_of(laptop).handle,
        session_of(phone).handle,
    ]
    assert all(row.find_all(text="This device") == [] for row in others)
    assert others[1].find("span", text="Safari on iPhone")
    assert others[1].find("bdi", text="198.51.100.7")


@pytest.mark.django_db
def test_other_users_and_expired_sessions_are_not_listed(
    auth_client: Client, browser_factory: Callable[..., Client], user_factory: Callable[..., Any]
) -> None:
    stranger = sign_in(browser_factory(), user_factory())
    old = sign_in(browser_factory(user_agent=SAFARI_IPHONE), session_of(auth_client).user)
    Session.objects.filter(pk=session_of(old).pk).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )

    handles = row_handles(parse(auth_client.get(LIST_URL, **HTMX).content))

    assert handles == [session_of(auth_client).handle]
    assert session_of(stranger).handle not in handles


@pytest.mark.django_db
def test_list_needs_sign_in(client: Client) -> None:
    response = client.get(LIST_URL)

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/account/sessions/"


@pytest.mark.django_db
def test_htmx_request_when_signed_out_redirects_the_tab(client: Client) -> None:
    response = client.get(
        LIST_URL, HTTP_HX_CURRENT_URL="http://testserver/settings/?tab=devices", **HTMX
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/settings/%3Ftab%3Ddevices"
    assert "Location" not in response
    assert response.content == b""


@pytest.mark.django_db
def test_htmx_redirect_never_points_off_site(client: Client) -> None:
    response = client.get(LIST_URL, HTTP_HX_CURRENT_URL="https://evil.example/", **HTMX)

    assert response["HX-Redirect"] == "/login/?next=/account/sessions/"


@pytest.mark.django_db
def test_refresh_after_own_session_was_revoked(engine: str, auth_client: Client) -> None:
    Session.objects.filter(pk=session_of(auth_client).pk).revoke()

    response = auth_client.get(LIST_URL, HTTP_HX_CURRENT_URL="http://testserver/account/", **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/account/"


@pytest.mark.django_db
def test_list_query_count_does_not_grow(auth_client: Client, user: AbstractBaseUser) -> None:
    def count(**headers: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = auth_client.get(LIST_URL, **headers)
        assert response.status_code == 200
        return len(queries)

    few, few_htmx = count(), count(**HTMX)
    bulk_sessions(user, 49)
    many, many_htmx = count(), count(**HTMX)

    assert len(rows(parse(auth_client.get(LIST_URL).content))) == 11
    # Sessions that do not fit cost one query: counting them.
    assert many == few + 1
    assert many_htmx == few_htmx + 1


@pytest.mark.django_db
def test_list_get_only(auth_client: Client) -> None:
    assert auth_client.post(LIST_URL).status_code == 405


# The cap and "Show all" ---------------------------------------------------------------


def more_link(page: Element) -> Element | None:
    links = [a for a in page.find_all("a", href=True) if "after=" in a.attrs["href"]]
    assert len(links) <= 1
    return links[0] if links else None


def by_recency(user: AbstractBaseUser, exclude: Session) -> list[str]:
    """The handles of ``user``'s other sessions in the list's order."""
    return list(
        Session.objects.filter(user=user)
        .exclude(pk=exclude.pk)
        .order_by("-last_activity", "-created_at", "-handle")
        .values_list("handle", flat=True)
    )


@pytest.mark.django_db
def test_the_list_shows_this_session_and_the_most_recent_others(
    auth_client: Client, phone: Client, user: AbstractBaseUser
) -> None:
    bulk_sessions(user, 25)
    current = session_of(auth_client)
    # This device comes first however long ago it was active.
    Session.objects.filter(pk=current.pk).update(
        last_activity=timezone.now() - datetime.timedelta(days=5)
    )

    for response in (auth_client.get(LIST_URL), auth_client.get(LIST_URL, **HTMX)):
        page = parse(response.content)
        assert row_handles(page) == [current.handle, *by_recency(user, current)[:10]]
        assert row_handles(page)[1] == session_of(phone).handle
        link = more_link(page)
        assert link is not None and link.text == "Show all (27)"
        assert link.attrs["href"].startswith(LIST_URL + "?after=")
        # One dialog in the list ("all other sessions"); a row's is fetched when wanted.
        assert [d.attrs["data-us-dialog"] for d in page.find_all("dialog")] == ["others"]
        assert "Your 26 other sessions will be signed out." in response.content.decode()


@pytest.mark.django_db
def test_no_show_all_while_everything_fits(
    auth_client: Client, capped: Callable[..., list[Session]]
) -> None:
    capped(3, limit=3)

    page = parse(auth_client.get(LIST_URL).content)

    assert len(rows(page)) == 4
    assert more_link(page) is None


@pytest.mark.django_db
def test_show_all_pages_through_every_session_once(
    auth_client: Client, phone: Client, user: AbstractBaseUser, capped: Callable[..., list[Session]]
) -> None:
    capped(14, limit=3, page_size=4)
    current = session_of(auth_client)

    first = parse(auth_client.get(LIST_URL, **HTMX).content)
    seen = row_handles(first)[1:]
    link = more_link(first)
    labels, announcements = [], []
    while link is not None:
        assert link.attrs["hx-get"] == link.attrs["href"]
        response = auth_client.get(link.attrs["href"], **HTMX)
        assert response.status_code == 200
        page = parse(response.content)
        container = page.find("div", data_us_page=True)
        assert container.attrs["data-us-more"] == ""
        announcements.append(container.attrs["data-us-announce"])
        assert page.find_all("section") == [] and page.find_all("html") == []
        seen += row_handles(page)
        labels.append(link.text)
        link = more_link(page)

    assert seen == by_recency(user, current)
    assert labels == ["Show all (16)", "Show more", "Show more"]
    assert announcements == [
        "4 more sessions shown.",
        "4 more sessions shown.",
        "4 more sessions shown.",
    ]
    assert current.handle not in seen


@pytest.mark.django_db
def test_a_page_after_sign_outs_skips_and_repeats_nothing(
    auth_client: Client, user: AbstractBaseUser, capped: Callable[..., list[Session]]
) -> None:
    capped(10, limit=3)
    current = session_of(auth_client)
    order = by_recency(user, current)
    first = parse(auth_client.get(LIST_URL, **HTMX).content)
    link = more_link(first)
    assert link is not None

    # The last row shown (the cursor's own) and the first one after it end;
    # a row further down becomes active and moves to the top.
    Session.objects.filter(handle__in=[order[2], order[3]]).delete()
    Session.objects.filter(handle=order[6]).update(last_activity=timezone.now())
    page = parse(auth_client.get(link.attrs["href"], **HTMX).content)

    assert row_handles(page) == [order[4], order[5], *order[7:]]


@pytest.mark.parametrize(
    "after",
    [
        "",
        "-1",
        "-1.-1.x",
        "0",
        "abc",
        "99999999999999999999999999.1.x",
        "1.2.<script>alert(1)</script>",
        "1.2.3.4",
        "%00",
        "9" * 5000,
    ],
)
@pytest.mark.django_db
def test_a_hostile_cursor_gets_the_list_from_the_top(
    auth_client: Client,
    phone: Client,
    user: AbstractBaseUser,
    after: str,
    capped: Callable[..., list[Session]],
) -> None:
    capped(5, limit=2)
    current = session_of(auth_client)
    order = by_recency(user, current)

    full = auth_client.get(LIST_URL, {"after": after})
    htmx = auth_client.get(LIST_URL, {"after": after}, **HTMX)

    assert full.status_code == htmx.status_code == 200
    # The full page as without a cursor; htmx gets a page from the top (the
    # script skips rows it shows already).
    assert row_handles(parse(full.content)) == [current.handle, *order[:2]]
    assert row_handles(parse(htmx.content)) == order
    assert "<script>alert" not in full.content.decode() + htmx.content.decode()


@pytest.mark.django_db
def test_a_cursor_from_another_users_list_shows_nothing_of_theirs(
    auth_client: Client, user: AbstractBaseUser, user_factory: Callable[..., Any]
) -> None:
    stranger = user_factory()
    theirs = bulk_sessions(stranger, 3)
    cursor = f"?after=0.0.{theirs[0].handle}"  # the earliest possible position

    page = parse(auth_client.get(LIST_URL + cursor, **HTMX).content)

    assert row_handles(page) == []
    assert more_link(page) is None


@pytest.mark.django_db
def test_without_javascript_the_link_leads_to_full_pages(
    auth_client: Client, user: AbstractBaseUser, capped: Callable[..., list[Session]]
) -> None:
    capped(7, limit=2, page_size=3)
    current = session_of(auth_client)
    order = by_recency(user, current)

    first = parse(auth_client.get(LIST_URL).content)
    link = more_link(first)
    assert link is not None
    second_response = auth_client.get(link.attrs["href"])
    second = parse(second_response.content)
    link = more_link(second)
    assert link is not None
    third = parse(auth_client.get(link.attrs["href"]).content)

    assert second.find("h1", text="Your devices")
    # Each page: this device first, then the next rows after the previous page.
    assert row_handles(second) == [current.handle, *order[2:5]]
    assert row_handles(third) == [current.handle, *order[5:7]]
    assert more_link(second) is not None and more_link(second).text == "Show more"
    assert more_link(third) is None
    # A later page is a snapshot: refreshing it would bring back the first page.
    section = second.find("section", data_us_widget=True)
    assert section.attrs["data-us-refresh-interval"] == "0"
    # Sign-outs from there come back to that page, and still count every session.
    assert {i.attrs["value"] for i in second.find_all("input", name="next")} == {
        link_path(second_response)
    }
    assert "Your 7 other sessions will be signed out." in second_response.content.decode()


def link_path(response: HttpResponse) -> str:
    request = response.wsgi_request  # type: ignore[attr-defined]
    return str(request.get_full_path())


@pytest.mark.django_db
def test_sign_out_all_others_covers_sessions_beyond_the_cap(
    engine: str, auth_client: Client, phone: Client, user: AbstractBaseUser
) -> None:
    bulk_sessions(user, 30)
    remember_keys()

    response = auth_client.post(OTHERS_URL, **HTMX)

    page = parse(response.content)
    listing = page.find("div", id="us-list")
    assert listing.attrs["data-us-announce"] == "31 other sessions were signed out."
    assert listing.attrs["data-us-ended"] == "others"
    assert row_handles(page) == [session_of(auth_client).handle]
    assert more_link(page) is None
    assert Session.objects.filter(user=user).count() == 1
    assert signed_in_user(phone) == "user="
    assert_no_session_keys(response)


@pytest.mark.django_db
def test_a_sign_out_names_the_session_it_ended(auth_client: Client, phone: Client) -> None:
    handle = session_of(phone).handle
    url = reverse("user_sessions:session_delete", args=[handle])

    signed_out = auth_client.post(url, **HTMX)
    already = auth_client.post(url, **HTMX)

    for response in (signed_out, already):
        assert parse(response.content).find("div", id="us-list").attrs["data-us-ended"] == handle
    listing = parse(auth_client.get(LIST_URL, **HTMX).content).find("div", id="us-list")
    assert "data-us-ended" not in listing.attrs


@pytest.mark.django_db
def test_a_session_beyond_the_cap_has_its_dialog_and_password_check(
    settings: Any, auth_client: Client, capped: Callable[..., list[Session]]
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    far = capped(6, limit=2)[-1]
    url = reverse("user_sessions:session_delete", args=[far.handle])
    assert far.handle not in row_handles(parse(auth_client.get(LIST_URL).content))

    dialog = parse(auth_client.get(url, **HTMX).content).find("dialog", data_us_dialog=far.handle)
    wrong = auth_client.post(url, {"password": "nope"}, **HTMX)

    assert dialog.find("h2", text="Sign out Safari on iPhone?")
    assert dialog.find("input", name="password")
    assert "data-us-open" in dialog.attrs
    # Refused: the list comes back with that session's dialog, open, with the error.
    page = parse(wrong.content)
    slot = page.find("div", data_us_dialog_slot=True)
    reopened = slot.find("dialog", data_us_dialog=far.handle)
    assert "data-us-open" in reopened.attrs
    assert reopened.find("h2", text="Sign out Safari on iPhone?")
    assert reopened.find("p", text="The password is not correct.")
    assert Session.objects.filter(pk=far.pk).exists()

    right = auth_client.post(url, {"password": "secret-password"}, **HTMX)

    assert parse(right.content).find("div", id="us-list").attrs["data-us-ended"] == far.handle
    assert not Session.objects.filter(pk=far.pk).exists()


# Signing out another session ----------------------------------------------------------


@pytest.mark.django_db
def test_revoke_other_with_htmx(engine: str, auth_client: Client, phone: Client) -> None:
    target = session_of(phone)
    remember_keys()
    url = reverse("user_sessions:session_delete", args=[target.handle])

    response = auth_client.post(
        url, {"next": "/settings/"}, HTTP_HX_CURRENT_URL="http://testserver/settings/", **HTMX
    )

    assert response.status_code == 200
    page = parse(response.content)
    listing = page.find("div", id="us-list")
    assert listing.attrs["data-us-announce"] == "Safari on iPhone was signed out."
    assert row_handles(page) == [session_of(auth_client).handle]
    assert page.find("p", text="You are not signed in anywhere else.").attrs.get("hidden") is None
    assert "hidden" in page.find("div", data_us_others=True).attrs
    # The no-JS forms in the fresh list still return to the page the user is on.
    assert {i.attrs["value"] for i in page.find_all("input", name="next")} == {"/settings/"}
    assert not Session.objects.filter(handle=target.handle).exists()
    assert signed_in_user(phone) == "user="
    assert signed_in_user(auth_client) == f"user={target.user_id}"
    assert_no_session_keys(response)


@pytest.mark.django_db
def test_revoke_other_without_javascript(engine: str, auth_client: Client, phone: Client) -> None:
    target = session_of(phone)
    url = reverse("user_sessions:session_delete", args=[target.handle])

    response = auth_client.post(url, {"next": "/settings/?tab=devices"})

    assert response.status_code == 302
    assert response["Location"] == "/settings/?tab=devices"
    assert not Session.objects.filter(handle=target.handle).exists()
    assert signed_in_user(phone) == "user="


@pytest.mark.parametrize("unsafe", ["https://evil.example/", "//evil.example/", "", "javascript:x"])
@pytest.mark.django_db
def test_next_must_stay_on_site(auth_client: Client, phone: Client, unsafe: str) -> None:
    url = reverse("user_sessions:session_delete", args=[session_of(phone).handle])

    response = auth_client.post(url, {"next": unsafe})

    assert response["Location"] == LIST_URL


@pytest.mark.django_db
def test_cannot_revoke_someone_elses_session(
    auth_client: Client, browser_factory: Callable[..., Client], user_factory: Callable[..., Any]
) -> None:
    stranger = sign_in(browser_factory(), user_factory())
    url = reverse("user_sessions:session_delete", args=[session_of(stranger).handle])
    before = Session.objects.count()

    plain = auth_client.post(url)
    htmx = auth_client.post(url, **HTMX)
    confirm_page = auth_client.get(url)

    assert plain.status_code == 404
    # htmx: 200, so that htmx 2 (and django-htmx's debug script) swap it in.
    assert htmx.status_code == 200
    assert confirm_page.status_code == 404
    assert Session.objects.count() == before
    assert signed_in_user(stranger) != "user="
    # The htmx answer is the user's own list, as for a session that just ended.
    assert row_handles(parse(htmx.content)) == [session_of(auth_client).handle]
    assert parse(htmx.content).find("div", id="us-list").attrs["data-us-announce"] == (
        "That session had already ended."
    )


@pytest.mark.django_db
def test_unknown_handle_is_404(auth_client: Client) -> None:
    response = auth_client.post(reverse("user_sessions:session_delete", args=["nope"]))

    assert response.status_code == 404


@pytest.mark.django_db
def test_get_on_delete_urls_changes_nothing(auth_client: Client, phone: Client) -> None:
    target = session_of(phone)
    before = Session.objects.count()

    one = auth_client.get(
        reverse("user_sessions:session_delete", args=[target.handle]) + "?next=/settings/"
    )
    others = auth_client.get(OTHERS_URL)
    dialog = auth_client.get(reverse("user_sessions:session_delete", args=[target.handle]), **HTMX)

    assert Session.objects.count() == before
    assert signed_in_user(phone) != "user="
    page = parse(one.content)
    assert page.find("h1", text="Sign out Safari on iPhone?")
    form = page.find("form", method="post")
    assert form.attrs["action"] == reverse("user_sessions:session_delete", args=[target.handle])
    assert form.find("input", name="next").attrs["value"] == "/settings/"
    assert form.find("button", text="Sign out").attrs["type"] == "submit"
    assert page.find("a", text="Cancel").attrs["href"] == "/settings/"
    assert parse(others.content).find("h1", text="Sign out all other sessions?")
    assert parse(dialog.content).find("dialog", data_us_dialog=target.handle)
    assert parse(dialog.content).find_all("html") == []
    assert_no_session_keys(one, others, dialog)


@pytest.mark.django_db
def test_delete_urls_refuse_other_methods(auth_client: Client, phone: Client) -> None:
    url = reverse("user_sessions:session_delete", args=[session_of(phone).handle])

    assert auth_client.delete(url).status_code == 405
    assert auth_client.put(OTHERS_URL).status_code == 405
    assert Session.objects.count() == 2


@pytest.mark.django_db
def test_delete_needs_sign_in(client: Client, phone: Client) -> None:
    url = reverse("user_sessions:session_delete", args=[session_of(phone).handle])

    plain = client.post(url)
    htmx = client.post(url, HTTP_HX_CURRENT_URL="http://testserver/account/", **HTMX)

    assert plain.status_code == 302
    assert plain["Location"].startswith("/login/?next=")
    assert htmx["HX-Redirect"] == "/login/?next=/account/"
    assert signed_in_user(phone) != "user="


# CSRF ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_csrf_is_enforced(user: AbstractBaseUser, phone: Client) -> None:
    strict = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=FIREFOX_LINUX)
    strict.force_login(user)
    target = session_of(phone)
    url = reverse("user_sessions:session_delete", args=[target.handle])

    refused = strict.post(url, **HTMX)
    refused_others = strict.post(OTHERS_URL)

    assert refused.status_code == 403
    assert refused_others.status_code == 403
    assert Session.objects.filter(handle=target.handle).exists()

    dialog = parse(strict.get(url, **HTMX).content)
    dialog_form = dialog.find("dialog", data_us_dialog=target.handle).find("form")
    token = re.fullmatch(r'\{"X-CSRFToken": "(\w+)"\}', dialog_form.attrs["hx-headers"])
    assert token is not None

    accepted = strict.post(url, HTTP_X_CSRFTOKEN=token.group(1), **HTMX)

    assert accepted.status_code == 200
    assert not Session.objects.filter(handle=target.handle).exists()


@pytest.mark.django_db
def test_htmx_attributes_sit_on_the_requesting_element(
    auth_client: Client, phone: Client, capped: Callable[..., list[Session]]
) -> None:
    capped(2, limit=1, page_size=1)
    list_page = auth_client.get(LIST_URL)
    dialog = auth_client.get(
        reverse("user_sessions:session_delete", args=[session_of(phone).handle]), **HTMX
    )
    more_url = parse(list_page.content).find("a", text="Show all (4)").attrs["href"]
    next_page = auth_client.get(more_url, **HTMX)

    forms = links = 0
    for response in (list_page, dialog, next_page):
        for element in parse(response.content).iter():
            hx = {name for name in element.attrs if name.startswith("hx-")}
            if not hx:
                continue
            # htmx 4 inherits nothing: each requesting element carries it all.
            if element.tag == "form":
                forms += 1
                assert hx == {"hx-post", "hx-target", "hx-swap", "hx-headers"}
                assert element.attrs["hx-post"] == element.attrs["action"]
                assert element.attrs["hx-target"] == "#us-list"
                assert element.attrs["hx-swap"] == "outerHTML"
                assert element.find_all("input", name="csrfmiddlewaretoken")
            else:
                links += 1
                # "Show all" / "Show more": a link that also works without JavaScript.
                assert element.tag == "a"
                assert hx == {"hx-get", "hx-target", "hx-swap"}
                assert element.attrs["hx-get"] == element.attrs["href"]
                assert element.attrs["hx-target"] == "closest [data-us-more]"
                assert element.attrs["hx-swap"] == "outerHTML"
        assert "hx-delete" not in response.content.decode()
    # The "sign out all others" dialog and the one a row's button fetched; the
    # link on the list and the one on the next page.
    assert (forms, links) == (2, 2)


# Signing out every other session ------------------------------------------------------


@pytest.mark.django_db
def test_sign_out_all_others(
    engine: str, auth_client: Client, phone: Client, laptop: Client
) -> None:
    remember_keys()

    response = auth_client.post(OTHERS_URL, **HTMX)

    assert response.status_code == 200
    page = parse(response.content)
    assert page.find("div", id="us-list").attrs["data-us-announce"] == (
        "2 other sessions were signed out."
    )
    assert row_handles(page) == [session_of(auth_client).handle]
    assert Session.objects.count() == 1
    assert signed_in_user(phone) == "user="
    assert signed_in_user(laptop) == "user="
    assert signed_in_user(auth_client) != "user="
    assert_no_session_keys(response)


@pytest.mark.django_db
def test_sign_out_all_others_without_javascript(auth_client: Client, phone: Client) -> None:
    response = auth_client.post(OTHERS_URL, {"next": "/settings/"})

    assert response.status_code == 302
    assert response["Location"] == "/settings/"
    assert signed_in_user(phone) == "user="
    assert signed_in_user(auth_client) != "user="


@pytest.mark.django_db
def test_sign_out_all_others_spares_a_sign_in_that_races_it(
    engine: str,
    auth_client: Client,
    phone: Client,
    user: AbstractBaseUser,
    browser_factory: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    newcomer = browser_factory(user_agent=FIREFOX_LINUX)
    original = SessionDeleteOtherView.sign_out

    def sign_in_meanwhile(view: SessionDeleteOtherView) -> str:
        # Another device signs in after this request began, before it deletes.
        sign_in(newcomer, user)
        return original(view)

    monkeypatch.setattr(SessionDeleteOtherView, "sign_out", sign_in_meanwhile)

    auth_client.post(OTHERS_URL, **HTMX)

    assert signed_in_user(phone) == "user="
    assert signed_in_user(newcomer) == f"user={user.pk}"
    assert signed_in_user(auth_client) == f"user={user.pk}"


@pytest.mark.django_db
def test_sign_out_all_others_keeps_other_users(
    auth_client: Client, browser_factory: Callable[..., Client], user_factory: Callable[..., Any]
) -> None:
    stranger = sign_in(browser_factory(), user_factory())

    auth_client.post(OTHERS_URL, **HTMX)

    assert signed_in_user(stranger) != "user="


# The current session ------------------------------------------------------------------


@pytest.mark.django_db
def test_signing_out_this_device_is_a_logout(engine: str, auth_client: Client) -> None:
    current = session_of(auth_client)

    response = auth_client.post(
        reverse("user_sessions:session_delete", args=[current.handle]), {"next": "/settings/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not Session.objects.filter(handle=current.handle).exists()
    assert signed_in_user(auth_client) == "user="


@pytest.mark.django_db
def test_signing_out_this_device_with_htmx(engine: str, auth_client: Client) -> None:
    current = session_of(auth_client)

    response = auth_client.post(
        reverse("user_sessions:session_delete", args=[current.handle]), **HTMX
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/"
    assert "Location" not in response
    assert signed_in_user(auth_client) == "user="


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("/goodbye/", "/goodbye/"), ("login", "/login/"), ("no-such-url-name", "/")],
)
@pytest.mark.django_db
def test_logout_redirect_url(
    auth_client: Client, settings: Any, setting: str, expected: str
) -> None:
    settings.LOGOUT_REDIRECT_URL = setting
    url = reverse("user_sessions:session_delete", args=[session_of(auth_client).handle])

    response = auth_client.post(url)

    assert response["Location"] == expected


# Asking for the password --------------------------------------------------------------


@pytest.mark.django_db
def test_password_for_all_others_when_required(
    settings: Any, auth_client: Client, phone: Client
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"

    wrong = auth_client.post(OTHERS_URL, {"password": "nope"}, **HTMX)

    assert wrong.status_code == 200
    assert signed_in_user(phone) != "user="
    page = parse(wrong.content)
    dialog = page.find("dialog", data_us_dialog="others")
    assert "data-us-open" in dialog.attrs
    field = dialog.find("input", name="password")
    assert field.attrs["aria-invalid"] == "true"
    error = dialog.find(id=field.attrs["aria-describedby"])
    assert error.text == "The password is not correct."
    assert dialog.find("label", text="Password").attrs["for"] == field.attrs["id"]
    assert "data-us-announce" not in page.find("div", id="us-list").attrs

    right = auth_client.post(OTHERS_URL, {"password": "secret-password"}, **HTMX)

    assert right.status_code == 200
    assert signed_in_user(phone) == "user="
    assert signed_in_user(auth_client) != "user="


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["others", "all"])
def test_password_policy_has_no_side_door(
    settings: Any, auth_client: Client, phone: Client, policy: str
) -> None:
    # A thief holding a session must not sign the owner's other devices out
    # one at a time where "sign out all others" would ask for the password.
    settings.USER_SESSIONS_REQUIRE_PASSWORD = policy
    handle = session_of(phone).handle
    url = reverse("user_sessions:session_delete", args=[handle])

    page = parse(auth_client.get(LIST_URL).content)
    dialog = parse(auth_client.get(url, **HTMX).content)
    htmx = auth_client.post(url, **HTMX)
    plain = auth_client.post(url)

    assert page.find("dialog", data_us_dialog="others").find_all("input", name="password")
    assert dialog.find("dialog", data_us_dialog=handle).find_all("input", name="password")
    assert htmx.status_code == 200
    assert plain.status_code == 200
    assert parse(plain.content).find("input", name="password")
    assert signed_in_user(phone) != "user="

    auth_client.post(url, {"password": "secret-password"}, **HTMX)
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_password_policy_leaves_signing_yourself_out_free(
    settings: Any, auth_client: Client
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    own = session_of(auth_client)
    url = reverse("user_sessions:session_delete", args=[own.handle])

    response = auth_client.post(url, **HTMX)

    assert response.status_code == 200
    assert response.headers["HX-Redirect"]
    assert signed_in_user(auth_client) == "user="


@pytest.mark.django_db
def test_password_for_every_revoke_when_required(
    settings: Any, auth_client: Client, phone: Client
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    handle = session_of(phone).handle
    url = reverse("user_sessions:session_delete", args=[handle])

    missing = auth_client.post(url, **HTMX)
    wrong = auth_client.post(url, {"password": "nope"}, **HTMX)

    assert signed_in_user(phone) != "user="
    for response in (missing, wrong):
        assert response.status_code == 200
        dialog = parse(response.content).find("dialog", data_us_dialog=handle)
        assert "data-us-open" in dialog.attrs
        assert dialog.find("input", name="password").attrs["aria-invalid"] == "true"
    assert parse(wrong.content).find("p", text="The password is not correct.")

    right = auth_client.post(url, {"password": "secret-password"}, **HTMX)

    assert right.status_code == 200
    assert handle not in row_handles(parse(right.content))
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_password_without_javascript(settings: Any, auth_client: Client, phone: Client) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    handle = session_of(phone).handle
    url = reverse("user_sessions:session_delete", args=[handle])

    # The row's plain button posts straight away: the server asks first.
    asked = auth_client.post(url, {"next": "/settings/"})
    wrong = auth_client.post(url, {"next": "/settings/", "password": "nope"})

    assert asked.status_code == 200
    page = parse(asked.content)
    assert page.find("h1", text="Sign out Safari on iPhone?")
    field = page.find("input", name="password")
    assert "aria-invalid" not in field.attrs
    assert page.find("input", name="next").attrs["value"] == "/settings/"
    assert wrong.status_code == 200
    assert parse(wrong.content).find("p", text="The password is not correct.")
    assert signed_in_user(phone) != "user="

    right = auth_client.post(url, {"next": "/settings/", "password": "secret-password"})

    assert right.status_code == 302
    assert right["Location"] == "/settings/"
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_signing_yourself_out_never_needs_a_password(settings: Any, auth_client: Client) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    url = reverse("user_sessions:session_delete", args=[session_of(auth_client).handle])

    response = auth_client.post(url, **HTMX)

    assert response["HX-Redirect"] == "/"
    assert signed_in_user(auth_client) == "user="


# Wrong passwords are limited per session ------------------------------------------------

TOO_MANY = "Too many wrong passwords. Try again in a few minutes."


def password_error(response: Any, dialog_key: str = "others") -> str:
    dialog = parse(response.content).find("dialog", data_us_dialog=dialog_key)
    field = dialog.find("input", name="password")
    assert field.attrs["aria-invalid"] == "true"
    return str(dialog.find(id=field.attrs["aria-describedby"]).text)


@pytest.mark.django_db
def test_wrong_passwords_lock_the_session_that_made_them(
    settings: Any, auth_client: Client, phone: Client, browser_factory: Any, user: Any
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 3
    errors = [
        password_error(auth_client.post(OTHERS_URL, {"password": f"guess-{n}"}, **HTMX))
        for n in range(3)
    ]
    # The last allowed attempt already says what happens next.
    assert errors == ["The password is not correct.", "The password is not correct.", TOO_MANY]
    # Locked: even the right password is not checked, and nothing is signed out.
    right = auth_client.post(OTHERS_URL, {"password": "secret-password"}, **HTMX)
    assert password_error(right) == TOO_MANY
    assert signed_in_user(phone) != "user="
    # Another session of the same account is not locked: the owner can still
    # sign out whoever is guessing.
    laptop = sign_in(browser_factory(), user)
    assert laptop.post(OTHERS_URL, {"password": "secret-password"}, **HTMX).status_code == 200
    assert signed_in_user(auth_client) == "user="
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_the_lock_ends_after_the_lockout_and_success_clears_the_count(
    settings: Any, auth_client: Client, phone: Client
) -> None:
    import time

    from django.core.cache import cache

    from user_sessions import throttle

    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 2
    settings.USER_SESSIONS_PASSWORD_LOCKOUT = 1
    handle = session_of(phone).handle
    url = reverse("user_sessions:session_delete", args=[handle])

    auth_client.post(url, {"password": "nope"}, **HTMX)
    auth_client.post(url, {"password": "nope"}, **HTMX)
    still = auth_client.post(url, {"password": "secret-password"}, **HTMX)
    assert password_error(still, handle) == TOO_MANY
    time.sleep(1.5)  # the cache forgets the count: a real expiry, on LocMem and Redis
    right = auth_client.post(url, {"password": "secret-password"}, **HTMX)
    assert handle not in row_handles(parse(right.content))
    assert cache.get(throttle._key(auth_client.session)) is None


def fixed_session(key: str = "k" * 32) -> Any:
    from user_sessions.backends.db import SessionStore

    store = SessionStore()
    store._session_key = key
    return store


@pytest.mark.django_db
def test_parallel_attempts_cannot_slip_under_the_limit(settings: Any) -> None:
    from django.core.cache import cache

    from user_sessions import throttle

    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 3
    session, other = fixed_session(), fixed_session("m" * 32)
    cache.delete_many([throttle._key(session), throttle._key(other)])
    # Ten requests in flight at once, each in its own thread: each takes its
    # number before any password is checked, so only three may check one.
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    start = Barrier(10)

    def request(_: int) -> int | None:
        start.wait()
        return throttle.reserve(session)

    with ThreadPoolExecutor(max_workers=10) as pool:
        numbers = list(pool.map(request, range(10)))
    assert sorted(n for n in numbers if n is not None) == [1, 2, 3]
    assert numbers.count(None) == 7
    # Another session is counted on its own.
    assert throttle.reserve(other) == 1


def test_the_wait_runs_from_the_last_wrong_password(settings: Any) -> None:
    from django.core.cache.backends.locmem import LocMemCache

    from user_sessions import throttle

    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 3
    settings.USER_SESSIONS_PASSWORD_LOCKOUT = 42
    calls: list[tuple[str, Any]] = []

    class Recorder(LocMemCache):
        def add(self, key: Any, value: Any, timeout: Any = None, version: Any = None) -> bool:
            calls.append(("add", timeout))
            return super().add(key, value, timeout, version)

        def touch(self, key: Any, timeout: Any = None, version: Any = None) -> bool:
            calls.append(("touch", timeout))
            return super().touch(key, timeout, version)

    recorder = Recorder("throttle-test", {})
    session = fixed_session()
    with mock.patch.object(throttle, "_cache", lambda: recorder):
        attempt = throttle.reserve(session)
        assert attempt == 1
        assert throttle.failed(session, attempt) is False
        assert throttle.failed(session, 3) is True  # the last one allowed
    assert calls == [("add", 42), ("touch", 42), ("touch", 42)]


def test_a_failing_cache_limits_nothing_and_says_so(settings: Any, caplog: Any) -> None:
    from django.core.cache.backends.locmem import LocMemCache

    from user_sessions import throttle

    class Down(LocMemCache):
        def _fail(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("cache down")

        add = incr = touch = delete = _fail

    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 1
    session = fixed_session()
    with mock.patch.object(throttle, "_cache", lambda: Down("down", {})):
        assert [throttle.reserve(session) for _ in range(3)] == [throttle.NOT_LIMITED] * 3
        assert throttle.failed(session, throttle.NOT_LIMITED) is False  # nothing was counted
        throttle.succeeded(session)
    assert "wrong passwords are not limited" in caplog.text


def test_the_cache_key_does_not_contain_the_session_key() -> None:
    from user_sessions import throttle

    key = throttle._key(fixed_session("s" * 32))
    assert key is not None and "s" * 8 not in key
    assert throttle._key(fixed_session("")) is None


@pytest.mark.django_db
def test_empty_submissions_are_not_guesses(
    settings: Any, auth_client: Client, phone: Client
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 1
    for _ in range(3):
        assert password_error(auth_client.post(OTHERS_URL, {"password": ""}, **HTMX)) != TOO_MANY
    auth_client.post(OTHERS_URL, {"password": "secret-password"}, **HTMX)
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_no_limit_when_attempts_is_zero(settings: Any, auth_client: Client, phone: Client) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 0
    for _ in range(8):
        wrong = auth_client.post(OTHERS_URL, {"password": "nope"}, **HTMX)
        assert password_error(wrong) == "The password is not correct."
    auth_client.post(OTHERS_URL, {"password": "secret-password"}, **HTMX)
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_lock_without_javascript(settings: Any, auth_client: Client, phone: Client) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 1
    url = reverse("user_sessions:session_delete", args=[session_of(phone).handle])
    locked = auth_client.post(url, {"next": "/settings/", "password": "nope"})
    assert locked.status_code == 200
    assert parse(locked.content).find("p", text=TOO_MANY)
    assert signed_in_user(phone) != "user="


# Page templates -----------------------------------------------------------------------


@pytest.mark.django_db
def test_page_extends_the_sites_base_template(
    auth_client: Client, settings: Any, tmp_path: Any
) -> None:
    (tmp_path / "base.html").write_text(
        "<!doctype html><title>{% block title %}{% endblock %} | Site</title>"
        "<header>Example site</header><main>{% block content %}{% endblock %}</main>"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]},
    ]

    page = parse(auth_client.get(LIST_URL).content)

    assert page.find("title", text="Your devices | Site")
    assert page.find("header", text="Example site")
    assert page.find("main").find("section", data_us_widget=True)


@pytest.mark.django_db
def test_page_without_a_site_base_template_stands_alone(auth_client: Client) -> None:
    page = parse(auth_client.get(LIST_URL).content)

    assert page.find("html").attrs["lang"] == "en"
    assert page.find("title", text="Your devices")
    assert page.find("script", src="/static/django_htmx/htmx-2.min.js")
    assert page.find("main").find("section", data_us_widget=True)


@pytest.mark.django_db
def test_messages_after_a_no_javascript_sign_out(auth_client: Client, phone: Client) -> None:
    url = reverse("user_sessions:session_delete", args=[session_of(phone).handle])

    response = auth_client.post(url, {"next": LIST_URL}, follow=True)

    assert parse(response.content).find("li", text="Safari on iPhone was signed out.")
