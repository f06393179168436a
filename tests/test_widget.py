from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest
from django.template import Context, RequestContext, Template
from django.test import Client, RequestFactory
from django.utils import timezone, translation

from tests.conftest import CHROME_WINDOWS, SAFARI_IPHONE
from tests.test_views import bulk_sessions, parse, row_handles, rows, session_of, sign_in
from user_sessions import devices
from user_sessions.backends.db import SessionStore
from user_sessions.models import Session

PACKAGE = Path(__file__).resolve().parent.parent / "user_sessions"
TEMPLATES = PACKAGE / "templates" / "user_sessions"
STATIC = PACKAGE / "static" / "user_sessions"

WIDGET = '{% include "user_sessions/widget.html" %}'


def make_session(user: AbstractBaseUser | None, **fields: Any) -> Session:
    fields.setdefault("user_agent", CHROME_WINDOWS)
    fields.setdefault("ip", "203.0.113.10")
    store = SessionStore()
    store.create()
    assert store.session_key is not None
    Session.objects.filter(session_key=store.session_key).update(user=user, **fields)
    return Session.objects.get(session_key=store.session_key)


def page_request(
    user: AbstractBaseUser | AnonymousUser, session: Session | None = None, path: str = "/account/"
) -> HttpRequest:
    """A request as a site's own view receives it: the user is already loaded."""
    request = RequestFactory().get(path)
    request.user = user
    request.session = SessionStore(session.session_key if session else None)
    return request


def render(request: HttpRequest, source: str = WIDGET, **context: Any) -> str:
    return Template("{% load user_sessions_widget %}" + source).render(
        RequestContext(request, context)
    )


@pytest.fixture
def current(user: AbstractBaseUser) -> Session:
    return make_session(user)


# What it shows ------------------------------------------------------------------------


@pytest.mark.django_db
def test_widget_lists_sessions_current_first(user: AbstractBaseUser, current: Session) -> None:
    hour_ago = timezone.now() - datetime.timedelta(hours=1)
    Session.objects.filter(pk=current.pk).update(last_activity=hour_ago)
    phone = make_session(user, user_agent=SAFARI_IPHONE, ip="198.51.100.7")
    tablet = make_session(
        user, user_agent=SAFARI_IPHONE, last_activity=timezone.now() - datetime.timedelta(days=1)
    )

    page = parse(render(page_request(user, current)))

    section = page.find("section", data_us_widget=True)
    assert section.attrs["dir"] == "ltr"
    assert page.find("h2", text="Your devices").attrs["id"] == section.attrs["aria-labelledby"]
    assert row_handles(page) == [current.handle, phone.handle, tablet.handle]
    first, second, third = rows(page)
    assert first.find("span", text="This device")
    assert first.find("span", text="Chrome on Windows")
    assert first.find("time", text="Active now")
    assert second.find("span", text="Safari on iPhone")
    assert second.find("time", text="Active now")
    assert third.find("time", text="1 day ago")
    assert (
        third.find("time", text="1 day ago")
        .attrs["datetime"]
        .startswith(tablet.last_activity.isoformat()[:19])
    )
    for row in (second, third):
        assert row.find_all("span", text="This device") == []
        # The other "Sign out" of the row is inside its (closed) dialog.
        button = row.find("button", text="Sign out", aria_describedby=True)
        assert row.find(id=button.attrs["aria-describedby"]).text == "Safari on iPhone"
    assert page.find("button", text="Sign out all other sessions")
    assert page.find("p", text="You are not signed in anywhere else.").attrs.get("hidden") == ""


@pytest.mark.django_db
def test_last_activity_in_hours(user: AbstractBaseUser, current: Session) -> None:
    make_session(user, last_activity=timezone.now() - datetime.timedelta(hours=2, minutes=5))

    page = parse(render(page_request(user, current)))

    assert rows(page)[1].find("time", text="2 hours ago")


@pytest.mark.django_db
def test_active_now_follows_the_activity_interval(
    settings: Any, user: AbstractBaseUser, current: Session
) -> None:
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 300
    make_session(user, last_activity=timezone.now() - datetime.timedelta(minutes=9))

    page = parse(render(page_request(user, current)))

    assert rows(page)[1].find("time", text="Active now")


@pytest.mark.django_db
def test_only_session_hides_sign_out_all(user: AbstractBaseUser, current: Session) -> None:
    page = parse(render(page_request(user, current)))

    assert "hidden" in page.find("div", data_us_others=True).attrs
    assert "hidden" not in page.find("p", text="You are not signed in anywhere else.").attrs


@pytest.mark.django_db
def test_anonymous_visitors_see_a_sign_in_hint(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        html = render(page_request(AnonymousUser(), path="/account/?tab=devices"))

    page = parse(html)
    assert page.find("a", text="Sign in").attrs["href"] == "/login/?next=/account/%3Ftab%3Ddevices"
    assert page.find(text="Sign in to see where you are signed in. Sign in")
    assert rows(page) == []
    section = page.find("section", data_us_widget=True)
    assert "data-us-refresh-url" not in section.attrs


@pytest.mark.django_db
def test_widget_through_a_real_page(auth_client: Client) -> None:
    page = parse(auth_client.get("/account/sessions/").content)

    assert row_handles(page) == [session_of(auth_client).handle]


@pytest.mark.parametrize(
    ("others", "queries"),
    [
        (0, 1),  # only this device
        (10, 1),  # exactly the cap: everything fits, nothing to count
        (11, 2),  # one more: the rows, then the count for "Show all"
        (9_999, 2),
    ],
)
@pytest.mark.django_db
def test_widget_cost_is_bounded(
    user: AbstractBaseUser,
    current: Session,
    others: int,
    queries: int,
    django_assert_num_queries: Any,
) -> None:
    bulk_sessions(user, others)
    request = page_request(user, current)

    # One more for "Recent activity" (tests/test_history.py: none with history off).
    with django_assert_num_queries(queries + 1):
        html = render(request)

    page = parse(html)
    assert len(rows(page)) == 1 + min(others, 10)
    assert rows(page)[0].attrs["data-handle"] == current.handle
    links = page.find_all("a", hx_get=True)
    assert [a.text for a in links] == ([f"Show all ({others + 1})"] if others > 10 else [])


@pytest.mark.django_db
def test_widget_html_does_not_grow_with_the_sessions(
    user: AbstractBaseUser, current: Session
) -> None:
    bulk_sessions(user, 11)
    request = page_request(user, current)
    eleven = render(request)
    bulk_sessions(user, 9_989, minutes_ago=100)

    ten_thousand = render(request)

    assert len(rows(parse(ten_thousand))) == 11
    # The same rows; only the counts in "Show all" and in the dialog grow a digit or two.
    assert len(ten_thousand) - len(eleven) <= 10
    assert len(ten_thousand.encode()) < 40_000


@pytest.mark.django_db
def test_a_page_of_rows_costs_one_query(
    user: AbstractBaseUser, current: Session, django_assert_num_queries: Any
) -> None:
    from user_sessions.paging import Cursor
    from user_sessions.widget import PAGE_SIZE, build_device_page

    sessions = bulk_sessions(user, 9_999)
    request = page_request(user, current)
    start = Cursor.after(sessions[4_000])

    with django_assert_num_queries(1):
        page = build_device_page(request, start)

    assert [s.handle for s in page.sessions] == [
        s.handle for s in sessions[4_001 : 4_001 + PAGE_SIZE]
    ]
    assert page.more_url.endswith(Cursor.after(sessions[4_000 + PAGE_SIZE]).encode())
    with django_assert_num_queries(1):
        last = build_device_page(request, Cursor.after(sessions[-3]))
    assert [s.handle for s in last.sessions] == [s.handle for s in sessions[-2:]]
    assert last.more_url == ""


@pytest.mark.django_db
def test_widget_limit_is_a_setting(settings: Any, user: AbstractBaseUser, current: Session) -> None:
    settings.USER_SESSIONS_WIDGET_LIMIT = 3
    bulk_sessions(user, 5)

    page = parse(render(page_request(user, current)))

    assert len(rows(page)) == 4
    assert page.find("a", text="Show all (6)")


@pytest.mark.parametrize("value", [0, -1, True, "10", 2.5, None])
def test_widget_limit_must_be_a_whole_number_of_sessions(settings: Any, value: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from user_sessions.conf import app_settings

    settings.USER_SESSIONS_WIDGET_LIMIT = value

    with pytest.raises(ImproperlyConfigured, match="USER_SESSIONS_WIDGET_LIMIT"):
        _ = app_settings.WIDGET_LIMIT


@pytest.mark.django_db
def test_rows_carry_no_form_dialog_or_token(
    settings: Any, user: AbstractBaseUser, current: Session
) -> None:
    # What made a row cost half a millisecond and 2.5 KB: its own form, CSRF
    # token, hidden input and dialog (with a password form when asked for).
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    make_session(user, user_agent=SAFARI_IPHONE)

    page = parse(render(page_request(user, current)))

    for row in rows(page):
        assert {el.tag for el in row.iter()}.isdisjoint({"form", "input", "dialog"}), row
        button = row.find("button", text="Sign out")
        assert button.attrs["form"] == "us-signout"
        assert button.attrs["formaction"] == f"/account/sessions/{row.attrs['data-handle']}/delete/"
    # Every button submits the list's one form, which carries the token once.
    shared = page.find("form", id="us-signout")
    assert shared.attrs["method"] == "post"
    assert shared.find_all("input", name="csrfmiddlewaretoken")
    # The one password field is the "all other sessions" dialog's.
    assert len(page.find_all("input", name="password")) == 1


@pytest.mark.django_db
def test_rtl_languages_turn_the_widget(user: AbstractBaseUser, current: Session) -> None:
    with translation.override("ar"):
        html = render(page_request(user, current))

    assert parse(html).find("section", data_us_widget=True).attrs["dir"] == "rtl"


@pytest.mark.django_db
def test_heading_level_can_be_chosen(user: AbstractBaseUser, current: Session) -> None:
    html = render(
        page_request(user, current),
        '{% include "user_sessions/widget.html" with heading_level=3 %}',
    )

    assert parse(html).find("h3", text="Your devices")


@pytest.mark.django_db
def test_heading_level_applies_to_a_widget_the_view_built(
    user: AbstractBaseUser, current: Session
) -> None:
    from user_sessions.widget import build_device_list

    request = page_request(user, current)
    built = build_device_list(request, heading_level=1)
    html = render(
        request, '{% include "user_sessions/widget.html" with heading_level=3 %}', widget=built
    )
    assert parse(html).find("h3", text="Your devices")
    # Without one, the view's level stands.
    assert parse(render(request, widget=built)).find("h1", text="Your devices")


# Safety -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_user_agent_markup_is_escaped(
    user: AbstractBaseUser, current: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = "<script>alert(1)</script>"
    make_session(user, user_agent=payload)
    raw = render(page_request(user, current))
    # A parser that echoed its input would put the payload into the label.
    monkeypatch.setattr(devices, "device_label", lambda user_agent, *hints: user_agent)
    echoed = render(page_request(user, current))

    for html in (raw, echoed):
        assert payload not in html
        assert "<script>" not in html.replace('<script src="/static/', "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in echoed
    assert parse(echoed).find("span", text=payload)


@pytest.mark.django_db
def test_widget_never_shows_session_keys(
    settings: Any, user: AbstractBaseUser, current: Session
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    others = [make_session(user) for _ in range(3)]

    html = render(page_request(user, current))

    for session in [current, *others]:
        assert session.session_key not in html
        assert session.handle in html


@pytest.mark.django_db
def test_other_users_sessions_never_show(
    user: AbstractBaseUser, user_factory: Callable[..., Any], current: Session
) -> None:
    stranger = make_session(user_factory())

    assert stranger.handle not in render(page_request(user, current))


def test_templates_mark_nothing_safe() -> None:
    for path in TEMPLATES.rglob("*.html"):
        source = path.read_text()
        assert "|safe" not in source, path
        assert "autoescape off" not in source, path


def test_templates_have_no_inline_scripts_styles_or_cdns() -> None:
    for path in TEMPLATES.rglob("*.html"):
        if path.relative_to(TEMPLATES).parts[0] == "email":
            # Mail, not a page: no CSP applies, and mail clients honour
            # only inline styles (test_alerts checks what mails hold).
            continue
        # What a template's comments say never reaches the page.
        source = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)
        source = re.sub(r"\{% comment %\}.*?\{% endcomment %\}", "", source, flags=re.S)
        assert "<script" not in source, path
        assert "<style" not in source, path
        assert " style=" not in source, path
        assert not re.search(r"\son[a-z]+=", source), path
        assert "http://" not in source and "https://" not in source, path
        assert "//cdn" not in source, path


def test_dialogs_carry_no_id() -> None:
    # While an htmx 4 swap settles, new elements get the attributes of the old
    # element with the same id; for a dialog that includes "open".
    source = (TEMPLATES / "partials" / "dialog.html").read_text()

    assert re.search(r"<dialog[^>]*\sid=", source) is None


def test_templates_hard_code_no_urls() -> None:
    for path in TEMPLATES.rglob("*.html"):
        assert "/account/" not in path.read_text(), path


# Static files -------------------------------------------------------------------------


@pytest.mark.django_db
def test_assets_carry_the_csp_nonce(user: AbstractBaseUser, current: Session) -> None:
    request = page_request(user, current)
    request.csp_nonce = "n0nce"  # type: ignore[attr-defined]

    page = parse(render(request))

    assert page.find("link", rel="stylesheet").attrs == {
        "rel": "stylesheet",
        "href": "/static/user_sessions/user_sessions.css",
        "nonce": "n0nce",
    }
    assert page.find("script").attrs == {
        "src": "/static/user_sessions/user_sessions.js",
        "defer": "",
        "nonce": "n0nce",
    }


@pytest.mark.django_db
def test_assets_without_csp() -> None:
    html = Template("{% load user_sessions_widget %}{% user_sessions_assets %}").render(Context())

    assert html == (
        '<link rel="stylesheet" href="/static/user_sessions/user_sessions.css">'
        '<script src="/static/user_sessions/user_sessions.js" defer></script>'
    )


def _css_rules() -> list[tuple[str, str]]:
    css = re.sub(r"/\*.*?\*/", "", (STATIC / "user_sessions.css").read_text(), flags=re.S)
    css = re.sub(r"@media[^{]*\{((?:[^{}]*\{[^}]*\})*)\s*\}", r"\1", css)
    return [(sel.strip(), body) for sel, body in re.findall(r"([^{}]+)\{([^}]*)\}", css)]


def test_css_stays_inside_the_widget() -> None:
    rules = _css_rules()
    assert rules
    for selectors, _body in rules:
        for selector in selectors.split(","):
            scoped = r"^(:where\(\.us-widget\)|\.us-widget)([\s.:\[]|$)"
            assert re.match(scoped, selector.strip()), selector


def test_css_uses_logical_properties_only() -> None:
    physical = re.compile(
        r"(^|[;\s])(margin|padding|border)-(left|right|top|bottom)\b"
        r"|(^|[;\s])(left|right|top|bottom)\s*:"
        r"|text-align:\s*(left|right)|float:\s*(left|right)"
        r"|(^|[;\s])(width|height|min-width|max-width|min-height|max-height)\s*:"
    )
    for selectors, body in _css_rules():
        assert not physical.search(body), (selectors, body)


def test_css_has_a_dark_scheme_and_focus_styles() -> None:
    css = (STATIC / "user_sessions.css").read_text()

    assert "@media (prefers-color-scheme: dark)" in css
    assert ":focus-visible" in css
    assert all(
        f"--us-{name}" in css
        for name in ("color-text", "color-bg", "color-danger", "radius", "space-md", "color-focus")
    )


def test_script_depends_on_no_htmx_event_names() -> None:
    script = (STATIC / "user_sessions.js").read_text()

    assert "htmx:" not in script
    assert "window.UserSessions" in script  # the guard against a second load
    assert "visibilitychange" in script


# The password form --------------------------------------------------------------------


@pytest.mark.django_db
def test_password_form_uses_the_packages_crispy_pack(
    settings: Any, user: AbstractBaseUser, current: Session
) -> None:
    assert not hasattr(django_settings, "CRISPY_TEMPLATE_PACK")
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    make_session(user)

    page = parse(render(page_request(user, current)))

    dialog = page.find("dialog", data_us_dialog="others")
    field = dialog.find("input", name="password")
    assert field.attrs["type"] == "password"
    assert field.attrs["autocomplete"] == "current-password"
    assert "required" in field.attrs
    assert dialog.find("label", text="Password").attrs["for"] == field.attrs["id"]
    assert dialog.find("div", id=f"div_{field.attrs['id']}").has_class("us-field")
    # The dialog's own form holds the field: crispy adds no second <form>.
    assert len(dialog.find_all("form")) == 1


@pytest.mark.django_db
def test_crispy_pack_is_one_setting_away(
    settings: Any, tmp_path: Path, user: AbstractBaseUser, current: Session
) -> None:
    pack = tmp_path / "sitepack"
    pack.mkdir()
    (pack / "whole_uni_form.html").write_text(
        '<div class="site-form">{% for field in form %}{{ field }}{% endfor %}</div>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    settings.USER_SESSIONS_CRISPY_TEMPLATE_PACK = "sitepack"
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    make_session(user)

    page = parse(render(page_request(user, current)))

    assert (
        page.find("dialog", data_us_dialog="others")
        .find("div", class_="site-form")
        .find("input", name="password")
    )


@pytest.mark.django_db
def test_a_row_can_be_overridden_alone(
    settings: Any, tmp_path: Path, user: AbstractBaseUser, current: Session
) -> None:
    override = tmp_path / "user_sessions" / "partials"
    override.mkdir(parents=True)
    (override / "row.html").write_text(
        '<li data-handle="{{ session.handle }}">{{ session.ip }} custom</li>'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]

    page = parse(render(page_request(user, current)))

    assert rows(page)[0].text == "203.0.113.10 custom"
    assert page.find("h2", text="Your devices")


@pytest.mark.django_db
def test_widget_needs_the_request(user: AbstractBaseUser) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=r"context_processors\.request"):
        Template("{% load user_sessions_widget %}" + WIDGET).render(Context({}))


@pytest.mark.django_db
def test_signed_in_browser_sees_itself_first(
    browser_factory: Callable[..., Client], user: AbstractBaseUser
) -> None:
    first = sign_in(browser_factory(user_agent=SAFARI_IPHONE), user)
    second = sign_in(browser_factory(), user)

    page = parse(second.get("/account/sessions/").content)

    assert row_handles(page) == [session_of(second).handle, session_of(first).handle]


@pytest.mark.parametrize("interval", [0, 45])
@pytest.mark.django_db
def test_refresh_settings_reach_the_script(
    settings: Any, user: AbstractBaseUser, current: Session, interval: int
) -> None:
    settings.USER_SESSIONS_REFRESH_INTERVAL = interval

    section = parse(render(page_request(user, current))).find("section", data_us_widget=True)

    assert section.attrs["data-us-refresh-interval"] == str(interval)
    assert section.attrs["data-us-refresh-url"] == "/account/sessions/"


@pytest.mark.django_db
def test_parts_the_refresh_replaces_hold_text_only(
    settings: Any, user: AbstractBaseUser, current: Session
) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "all"
    make_session(user)

    page = parse(render(page_request(user, current)))

    parts = page.find_all(data_us_sync=True)
    assert {part.attrs["data-us-sync"] for part in parts} == {
        "title",
        "meta",
        "dialog-title",
        "dialog-text",
        "empty",
    }
    for part in parts:
        assert not any(
            el.tag in {"button", "form", "input", "a", "dialog"} for el in part.iter()
        ), part


def test_the_dialog_names_the_device_as_the_row_does() -> None:
    # With client hints the row says "Windows 11"; the question in the
    # sign-out dialog must name the same device.
    from django.template.loader import render_to_string

    from user_sessions.hints import ClientHints

    hints = ClientHints(platform="Windows", platform_version="15.0.0", browser="Chrome")
    session = Session(user_agent=CHROME_WINDOWS, client_hints=hints.serialise(), handle="h")
    assert session.device == "Chrome on Windows 11"

    html = render_to_string(
        "user_sessions/partials/confirm_text.html", {"session": session, "part": "title"}
    )

    assert "Sign out Chrome on Windows 11?" in html
