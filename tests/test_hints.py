from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.test_middleware import shift_clock, writes
from user_sessions import hints
from user_sessions.hints import ClientHints, from_headers, parse_stored
from user_sessions.models import Session

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# What Chrome 124 on Windows 11 sends once a site asked with Accept-CH.
WINDOWS_11_HINTS = {
    "HTTP_SEC_CH_UA": '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    "HTTP_SEC_CH_UA_MOBILE": "?0",
    "HTTP_SEC_CH_UA_PLATFORM": '"Windows"',
    "HTTP_SEC_CH_UA_PLATFORM_VERSION": '"15.0.0"',
    "HTTP_SEC_CH_UA_MODEL": '""',
    "HTTP_SEC_CH_UA_FULL_VERSION_LIST": (
        '"Chromium";v="124.0.6367.91", "Google Chrome";v="124.0.6367.91", '
        '"Not-A.Brand";v="99.0.0.0"'
    ),
}


def test_a_full_set_of_hints_is_reduced_to_what_the_labels_use():
    parsed = from_headers(WINDOWS_11_HINTS)
    assert parsed == ClientHints(
        platform="Windows",
        platform_version="15.0.0",
        model=None,
        mobile=False,
        browser="Chrome",
        browser_version="124.0.6367.91",
    )
    stored = parsed.serialise()
    assert stored == (
        'platform="Windows", platform-version="15.0.0", browser="Chrome", '
        'browser-version="124.0.6367.91", mobile=?0'
    )
    assert parse_stored(stored) == parsed


def test_low_entropy_hints_alone_give_browser_and_platform():
    parsed = from_headers(
        {
            "HTTP_SEC_CH_UA": '" Not A;Brand";v="99", "Chromium";v="124", "Microsoft Edge";v="124"',
            "HTTP_SEC_CH_UA_PLATFORM": '"macOS"',
            "HTTP_SEC_CH_UA_MOBILE": "?0",
        }
    )
    assert parsed == ClientHints(
        platform="macOS", mobile=False, browser="Edge", browser_version="124"
    )


def test_chromium_is_named_only_when_no_other_brand_is():
    parsed = from_headers({"HTTP_SEC_CH_UA": '"Not/A)Brand";v="8", "Chromium";v="126"'})
    assert parsed is not None and parsed.browser == "Chromium"


def test_no_hints_is_none():
    assert from_headers({}) is None
    assert from_headers({"HTTP_SEC_CH_UA": '"Not-A.Brand";v="99"'}) is None


@pytest.mark.parametrize(
    "header",
    [
        '"Windows',  # unbalanced quote
        'Windows"',
        '"Win"dows"',
        '"Win\\dows"',  # an escape RFC 8941 does not allow
        '"Wind\x00ows"',
        '"Windows\u00e9"',
        '"' + "W" * 600 + '"',
        '"Windows", "macOS"',
        "",
    ],
)
def test_a_malformed_platform_is_dropped_not_repaired(header: str):
    assert from_headers({"HTTP_SEC_CH_UA_PLATFORM": header}) is None


def test_values_with_quotes_or_backslashes_are_dropped():
    # RFC 8941 allows both escaped; no real model or brand has them.
    parsed = from_headers(
        {
            "HTTP_SEC_CH_UA_MODEL": '"A \\"quoted\\" model"',
            "HTTP_SEC_CH_UA_PLATFORM_VERSION": '"1\\\\2"',
            "HTTP_SEC_CH_UA_PLATFORM": '"Android"',
        }
    )
    assert parsed == ClientHints(platform="Android")


def test_too_long_values_are_dropped_rather_than_cut():
    parsed = from_headers(
        {"HTTP_SEC_CH_UA_MODEL": '"' + "P" * 49 + '"', "HTTP_SEC_CH_UA_PLATFORM": '"Android"'}
    )
    assert parsed == ClientHints(platform="Android")


@pytest.mark.parametrize(
    "header",
    [
        '"Chromium";v="124", ',  # trailing comma
        '"Chromium";v="124" "Google Chrome"',
        '"Chromium";v=',
        '"Chromium";="1"',
        ",,,",
        "Windows;v=1",  # a token where a brand string belongs
    ],
)
def test_a_malformed_brand_list_gives_no_browser(header: str):
    assert from_headers({"HTTP_SEC_CH_UA": header}) is None


@pytest.mark.parametrize("value", ["", "garbage", 'platform="Windows', "x" * 300, None, 42])
def test_unreadable_stored_values_are_none(value: Any):
    assert parse_stored(value) is None


def test_the_stored_form_always_fits_the_column():
    longest = ClientHints(
        platform="P" * 24,
        platform_version="1" * 24,
        model="M" * 48,
        mobile=True,
        browser="B" * 32,
        browser_version="2" * 24,
    )
    stored = longest.serialise()
    assert stored is not None
    field = Session._meta.get_field("client_hints")
    assert len(stored) <= hints.CLIENT_HINTS_MAX_LENGTH == field.max_length
    assert parse_stored(stored) == longest
    assert ClientHints(model='"' + "M" * 47, mobile=True).serialise() == "mobile=?1"


# Asking ----------------------------------------------------------------------


@pytest.mark.django_db
def test_html_pages_ask_for_the_hints(client: Client):
    response = client.get("/login/")
    assert response["Accept-CH"] == (
        "Sec-CH-UA, Sec-CH-UA-Mobile, Sec-CH-UA-Platform, Sec-CH-UA-Platform-Version, "
        "Sec-CH-UA-Model, Sec-CH-UA-Full-Version-List"
    )


@pytest.mark.django_db
def test_the_widget_page_asks_for_the_hints(auth_client: Client):
    response = auth_client.get("/account/sessions/")
    assert response.status_code == 200
    assert "Sec-CH-UA-Platform-Version" in response["Accept-CH"]


def test_only_html_responses_ask():
    response = JsonResponse({})
    hints.ask_for_hints(response)
    assert not response.has_header("Accept-CH")


def test_a_response_that_asks_for_its_own_hints_keeps_them():
    response = HttpResponse(headers={"Accept-CH": "Sec-CH-UA-Arch"})
    hints.ask_for_hints(response)
    assert response["Accept-CH"] == "Sec-CH-UA-Arch"


@pytest.mark.django_db
def test_the_setting_turns_asking_and_recording_off(
    engine: str, browser_factory: Any, user: Any, settings: Any
):
    settings.USER_SESSIONS_CLIENT_HINTS = False
    client = browser_factory(CHROME_WINDOWS, **WINDOWS_11_HINTS)
    assert not client.get("/login/").has_header("Accept-CH")
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert Session.objects.get().client_hints is None


def test_the_setting_must_be_a_boolean(settings: Any):
    settings.USER_SESSIONS_CLIENT_HINTS = "no"
    errors = [e for e in run_checks() if e.id == "user_sessions.E005"]
    assert [e.msg for e in errors] == [
        "USER_SESSIONS_CLIENT_HINTS: USER_SESSIONS_CLIENT_HINTS must be True or False."
    ]


# Recording -------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_records_the_hints(engine: str, browser_factory: Any, user: Any):
    client = browser_factory(CHROME_WINDOWS, **WINDOWS_11_HINTS)
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    session = Session.objects.get()
    assert session.client_hints == from_headers(WINDOWS_11_HINTS).serialise()  # type: ignore[union-attr]
    assert session.device == "Chrome on Windows 11"


@pytest.mark.django_db
def test_hints_are_written_with_the_activity_write_and_never_alone(
    engine: str, auth_client: Client, monkeypatch: pytest.MonkeyPatch
):
    assert Session.objects.get().client_hints is None
    auth_client.defaults.update(WINDOWS_11_HINTS)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            auth_client.get("/read/")
    assert writes(queries) == []  # inside the interval: nothing, hints or not
    assert Session.objects.get().client_hints is None
    shift_clock(monkeypatch, 61)
    with CaptureQueriesContext(connection) as queries:
        auth_client.get("/read/")
        auth_client.get("/read/")
    assert len(writes(queries)) == 1
    assert Session.objects.get().device == "Chrome on Windows 11"


@pytest.mark.django_db
def test_a_browser_that_stops_sending_hints_loses_them_with_the_next_activity(
    engine: str, browser_factory: Any, user: Any, monkeypatch: pytest.MonkeyPatch
):
    client = browser_factory(CHROME_WINDOWS, **WINDOWS_11_HINTS)
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    for name in WINDOWS_11_HINTS:
        del client.defaults[name]
    shift_clock(monkeypatch, 61)
    client.get("/read/")
    # Like the user agent, the row describes the browser's latest request.
    session = Session.objects.get()
    assert session.client_hints is None
    assert session.device == "Chrome on Windows"
