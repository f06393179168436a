from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geoip2.database
import maxminddb
import pytest
import ua_parser
from django.template import Context, Engine
from django.utils import translation
from pytest_django.fixtures import Settings
from ua_parser import user_agent_parser
from user_agents.parsers import UserAgent

from tests.geoip import (
    COUNTRY_DB_NAME,
    COUNTRY_ONLY_IP,
    GERMANY_IP,
    SAO_PAULO_IP,
    UNLISTED_IP,
    ZWOLLE_IP,
    write_city_db,
)
from user_sessions import devices

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
CHROME_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
# Reduced user agent: Chrome freezes the Android version and sends "K" as the model.
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
SAMSUNG_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 "
    "(KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"
)
# Safari's macOS version is frozen at 10.15.7 whatever the real one.
SAFARI_MACOS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51"
)
CHROME_CHROMEOS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.60 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
CURL = "curl/8.5.0"

DEVICE_LOGGER = "user_sessions.devices"


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    devices.reset_caches()
    yield
    devices.reset_caches()


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every string handed to ua-parser, in order."""
    calls: list[str] = []
    real_parse = ua_parser.parse

    def counting_parse(text: str) -> ua_parser.Result:
        calls.append(text)
        return real_parse(text)

    monkeypatch.setattr(ua_parser, "parse", counting_parse)
    return calls


def _spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"name resolution attempted: {args!r}")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        monkeypatch.setattr(socket, name, refuse)


def _device_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == DEVICE_LOGGER and record.levelno == logging.WARNING
    ]


# User agents ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "device", "browser", "platform"),
    [
        (CHROME_WINDOWS, "Chrome on Windows", "Chrome", "Windows"),
        (SAFARI_IPHONE, "Safari on iPhone", "Safari", "iPhone"),
        (SAFARI_IPAD, "Safari on iPad", "Safari", "iPad"),
        (CHROME_IPHONE, "Chrome on iPhone", "Chrome", "iPhone"),
        (FIREFOX_LINUX, "Firefox on Linux", "Firefox", "Linux"),
        (CHROME_ANDROID, "Chrome on Android", "Chrome", "Android"),
        (SAMSUNG_ANDROID, "Samsung Internet on Android", "Samsung Internet", "Android"),
        (SAFARI_MACOS, "Safari on macOS", "Safari", "macOS"),
        (EDGE_WINDOWS, "Edge on Windows", "Edge", "Windows"),
        (CHROME_CHROMEOS, "Chrome on ChromeOS", "Chrome", "ChromeOS"),
        (GOOGLEBOT, "Googlebot (bot)", "Googlebot", None),
        (GOOGLEBOT_SMARTPHONE, "Googlebot (bot)", "Googlebot", "Android"),
        (CURL, "curl", "curl", None),
        ("Mozilla/5.0 (Windows NT 10.0)", "Windows", None, "Windows"),
    ],
)
def test_labels(user_agent: str, device: str, browser: str | None, platform: str | None) -> None:
    assert devices.device_label(user_agent) == device
    assert devices.browser_label(user_agent) == browser
    assert devices.platform_label(user_agent) == platform


@pytest.mark.parametrize(
    "user_agent",
    [None, "", "   ", "\r\n\t", "asdfghjkl", "<script>alert(1)</script>", "Mozilla/5.0 (" * 500],
)
def test_unknown_user_agents_have_no_labels(user_agent: str | None) -> None:
    assert devices.device_label(user_agent) is None
    assert devices.browser_label(user_agent) is None
    assert devices.platform_label(user_agent) is None


CHROME_MACOS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
EDGE_MACOS = CHROME_MACOS + " Edg/124.0.2478.51"
CHROME_ANDROID_TABLET = CHROME_ANDROID.replace(" Mobile", "")


def stored_hints(
    platform: str,
    version: str = "",
    *,
    model: str = "",
    brand: str = "Google Chrome",
    mobile: str = "?0",
) -> str | None:
    """What the store keeps for a request carrying these hints."""
    from user_sessions.hints import from_headers

    parsed = from_headers(
        {
            "HTTP_SEC_CH_UA_PLATFORM": f'"{platform}"',
            "HTTP_SEC_CH_UA_PLATFORM_VERSION": f'"{version}"',
            "HTTP_SEC_CH_UA_MODEL": f'"{model}"',
            "HTTP_SEC_CH_UA_MOBILE": mobile,
            "HTTP_SEC_CH_UA_FULL_VERSION_LIST": (
                f'"Not-A.Brand";v="99.0.0.0", "Chromium";v="124.0.6367.91", "{brand}";v="124.0.1"'
            ),
        }
    )
    return parsed.serialise() if parsed is not None else None


@pytest.mark.parametrize(
    ("user_agent", "hints", "device"),
    [
        # Windows' platform version: 1-10 are Windows 10 releases, 13+ Windows 11.
        (CHROME_WINDOWS, stored_hints("Windows", "15.0.0"), "Chrome on Windows 11"),
        (CHROME_WINDOWS, stored_hints("Windows", "13.0.0"), "Chrome on Windows 11"),
        (CHROME_WINDOWS, stored_hints("Windows", "10.0.0"), "Chrome on Windows 10"),
        (CHROME_WINDOWS, stored_hints("Windows", "1.0.0"), "Chrome on Windows 10"),
        (CHROME_WINDOWS, stored_hints("Windows", "0.3.0"), "Chrome on Windows"),
        (
            EDGE_WINDOWS,
            stored_hints("Windows", "19.0.0", brand="Microsoft Edge"),
            "Edge on Windows 11",
        ),
        (CHROME_MACOS, stored_hints("macOS", "14.4.1"), "Chrome on macOS 14"),
        (EDGE_MACOS, stored_hints("macOS", "15.0.0", brand="Microsoft Edge"), "Edge on macOS 15"),
        (CHROME_MACOS, stored_hints("macOS", "10.15.7"), "Chrome on macOS 10.15"),
        (CHROME_MACOS, stored_hints("macOS"), "Chrome on macOS"),
        (
            CHROME_ANDROID,
            stored_hints("Android", "14.0.0", model="Pixel 8", mobile="?1"),
            "Chrome on Pixel 8",
        ),
        (CHROME_ANDROID, stored_hints("Android", "14.0.0", mobile="?1"), "Chrome on Android 14"),
        (
            CHROME_ANDROID,
            stored_hints("Android", "13", model="SM-S918B", brand="Samsung Internet", mobile="?1"),
            "Samsung Internet on SM-S918B",
        ),
        (CHROME_CHROMEOS, stored_hints("Chrome OS", "14541.0.0"), "Chrome on ChromeOS"),
        # Chromium-based browsers whose user agent says Chrome name themselves in hints.
        (CHROME_WINDOWS, stored_hints("Windows", "15.0.0", brand="Brave"), "Brave on Windows 11"),
        # Every Chromium build names "Chromium": the user agent's name stays.
        (CHROME_MACOS, stored_hints("macOS", "14.1", brand="Chromium"), "Chrome on macOS 14"),
        # No hints (Firefox, Safari, old rows): the user agent's label.
        (CHROME_WINDOWS, None, "Chrome on Windows"),
        (SAFARI_MACOS, None, "Safari on macOS"),
        (CHROME_ANDROID, None, "Chrome on Android"),
        (FIREFOX_LINUX, "", "Firefox on Linux"),
        (CHROME_WINDOWS, "not a stored value", "Chrome on Windows"),
        # Hints that contradict the user agent are ignored.
        (SAFARI_MACOS, stored_hints("Windows", "15.0.0"), "Safari on macOS"),
        (CHROME_MACOS, stored_hints("Windows", "15.0.0"), "Chrome on macOS"),
        (FIREFOX_LINUX, stored_hints("Linux"), "Firefox on Linux"),
        (CHROME_WINDOWS, stored_hints("Plan 9", "4"), "Chrome on Windows"),
        (GOOGLEBOT_SMARTPHONE, stored_hints("Android", "14", model="Pixel 8"), "Googlebot (bot)"),
    ],
)
def test_labels_from_client_hints(user_agent: str, hints: str | None, device: str) -> None:
    assert devices.device_label(user_agent, hints) == device


@pytest.mark.parametrize(
    ("user_agent", "hints", "kind"),
    [
        (CHROME_WINDOWS, None, "desktop"),
        (SAFARI_MACOS, None, "desktop"),
        (CHROME_CHROMEOS, None, "desktop"),
        (FIREFOX_LINUX, None, "desktop"),
        (SAFARI_IPHONE, None, "phone"),
        (CHROME_ANDROID, None, "phone"),
        (SAFARI_IPAD, None, "tablet"),
        (CHROME_ANDROID_TABLET, None, "tablet"),
        # The reduced user agent of an Android tablet and of a phone with
        # "Mobile" left out look alike; the mobile hint decides.
        (CHROME_ANDROID_TABLET, stored_hints("Android", "14", mobile="?1"), "phone"),
        (CHROME_ANDROID, stored_hints("Android", "14", mobile="?0"), "tablet"),
        (GOOGLEBOT, None, "bot"),
        (GOOGLEBOT_SMARTPHONE, None, "bot"),
        (CURL, None, "unknown"),
        (None, None, "unknown"),
        ("", stored_hints("Windows", "15"), "unknown"),
    ],
)
def test_device_kinds(user_agent: str | None, hints: str | None, kind: str) -> None:
    assert devices.device_kind(user_agent, hints) == kind


@pytest.mark.parametrize("user_agent", [None, "", "  \n "])
def test_empty_user_agent_is_not_parsed(user_agent: str | None, parse_calls: list[str]) -> None:
    assert devices.parse_user_agent(user_agent) is None
    assert parse_calls == []


def test_parse_user_agent_builds_a_complete_user_agents_object() -> None:
    agent = devices.parse_user_agent(SAFARI_MACOS)

    assert isinstance(agent, UserAgent)
    assert agent.ua_string == SAFARI_MACOS
    assert agent.browser.family == "Safari"
    assert agent.browser.version == (17, 4)
    assert agent.os.family == "Mac OS X"
    assert agent.os.version_string == "10.15.7"
    assert agent.device.family == "Mac"
    assert agent.is_pc is True
    assert agent.is_mobile is False
    assert agent.is_bot is False
    assert str(agent) == "PC / Mac OS X 10.15.7 / Safari 17.4"


def test_parse_user_agent_mobile_and_bot_properties() -> None:
    iphone = devices.parse_user_agent(SAFARI_IPHONE)
    ipad = devices.parse_user_agent(SAFARI_IPAD)
    bot = devices.parse_user_agent(GOOGLEBOT)

    assert iphone is not None
    assert ipad is not None
    assert bot is not None
    assert (iphone.is_mobile, iphone.is_tablet) == (True, False)
    assert (ipad.is_mobile, ipad.is_tablet) == (False, True)
    assert bot.is_bot is True


def test_unknown_parts_are_family_other() -> None:
    agent = devices.parse_user_agent("asdfghjkl")

    assert agent is not None
    assert agent.browser.family == "Other"
    assert agent.browser.version == ()
    assert agent.os.family == "Other"
    assert agent.device.family == "Other"
    assert str(agent) == "Other / Other / Other"


def test_parsing_skips_the_legacy_ua_parser_api(monkeypatch: pytest.MonkeyPatch) -> None:
    def legacy_parse(*args: object, **kwargs: object) -> None:
        pytest.fail("the legacy ua_parser.user_agent_parser.Parse was called")

    monkeypatch.setattr(user_agent_parser, "Parse", legacy_parse)

    assert devices.device_label(CHROME_WINDOWS) == "Chrome on Windows"


def test_parse_is_cached(parse_calls: list[str]) -> None:
    first = devices.parse_user_agent(CHROME_WINDOWS)
    devices.device_label(CHROME_WINDOWS)
    devices.browser_label(CHROME_WINDOWS)
    devices.platform_label(CHROME_WINDOWS)
    again = devices.parse_user_agent(CHROME_WINDOWS)

    assert parse_calls == [CHROME_WINDOWS]
    assert again is first

    devices.device_label(SAFARI_IPHONE)

    assert parse_calls == [CHROME_WINDOWS, SAFARI_IPHONE]


def test_reset_caches_forgets_parsed_user_agents(parse_calls: list[str]) -> None:
    devices.device_label(CHROME_WINDOWS)
    devices.reset_caches()
    devices.device_label(CHROME_WINDOWS)

    assert parse_calls == [CHROME_WINDOWS, CHROME_WINDOWS]


def test_long_user_agent_is_truncated_before_parsing(parse_calls: list[str]) -> None:
    long_agent = CHROME_WINDOWS + " " + "x" * 5000
    same_start = CHROME_WINDOWS + " " + "x" * 4000 + "y" * 1000

    assert devices.device_label(long_agent) == "Chrome on Windows"
    assert devices.device_label(same_start) == "Chrome on Windows"
    assert [len(text) for text in parse_calls] == [devices.MAX_USER_AGENT_LENGTH]
    assert parse_calls[0] == long_agent[: devices.MAX_USER_AGENT_LENGTH]


def test_surrounding_whitespace_shares_a_cache_entry(parse_calls: list[str]) -> None:
    devices.device_label(CHROME_WINDOWS)
    devices.device_label(f"  {CHROME_WINDOWS}\n")

    assert parse_calls == [CHROME_WINDOWS]


@pytest.mark.parametrize(
    "user_agent",
    [
        "\x00\x01\x02\x7f",
        "Mozilla/5.0 \x00\x1b[31m (Windows NT 10.0)",
        "\ud800 lone surrogate",
        "\U0001f600" * 5000,
        "a" * 5000,
        "Mozilla/5.0 (" + ";" * 5000,
    ],
)
def test_hostile_user_agents_do_not_raise(user_agent: str, parse_calls: list[str]) -> None:
    devices.device_label(user_agent)
    devices.device_label(user_agent)

    assert all(len(text) <= devices.MAX_USER_AGENT_LENGTH for text in parse_calls)
    # The lone surrogate is retried once in a form the compiled matcher accepts.
    assert len(parse_calls) <= 2


def test_lone_surrogate_keeps_the_rest_of_the_user_agent() -> None:
    broken = CHROME_WINDOWS.replace("AppleWebKit", "\ud800AppleWebKit")

    assert devices.device_label(broken) == "Chrome on Windows"


def test_warm_up_builds_the_global_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    if "parser" in vars(ua_parser):
        monkeypatch.delattr(ua_parser, "parser")

    devices.warm_up()

    assert "parser" in vars(ua_parser)


def test_labels_are_translated_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    german = {
        ("device", "%(browser)s on %(platform)s"): "%(browser)s auf %(platform)s",
        ("device", "%(name)s (bot)"): "%(name)s (Bot)",
    }
    assert devices.device_label(CHROME_WINDOWS) == "Chrome on Windows"

    monkeypatch.setattr(devices, "pgettext", lambda context, text: german[(context, text)])

    assert devices.device_label(CHROME_WINDOWS) == "Chrome auf Windows"
    assert devices.device_label(GOOGLEBOT) == "Googlebot (Bot)"


# Locations --------------------------------------------------------------------


@pytest.mark.usefixtures("geoip_settings")
def test_city_database_ipv4() -> None:
    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"
    assert devices.city_label(ZWOLLE_IP) == "Zwolle"
    assert devices.country_label(ZWOLLE_IP) == "Netherlands"
    location = devices.lookup_ip(ZWOLLE_IP)
    assert location is not None
    assert location.country_code == "NL"
    assert location.city_names["en"] == "Zwolle"
    assert location.country_names["de"] == "Niederlande"


@pytest.mark.usefixtures("geoip_settings")
def test_city_database_ipv6_with_non_ascii_city() -> None:
    assert devices.location_label(SAO_PAULO_IP) == "São Paulo, Brazil"
    assert devices.city_label(SAO_PAULO_IP) == "São Paulo"
    assert devices.country_label("2001:DB8:1:0:0:0:0:ff") == "Brazil"
    location = devices.lookup_ip(SAO_PAULO_IP)
    assert location is not None
    assert location.country_code == "BR"


@pytest.mark.usefixtures("geoip_settings")
def test_city_database_without_city_gives_the_country() -> None:
    assert devices.location_label(GERMANY_IP) == "Germany"
    assert devices.city_label(GERMANY_IP) is None
    assert devices.country_label(GERMANY_IP) == "Germany"


def test_country_database_file(settings: Settings, geoip_country_db: Path) -> None:
    settings.GEOIP_PATH = str(geoip_country_db)

    assert devices.location_label(ZWOLLE_IP) == "Netherlands"
    assert devices.city_label(ZWOLLE_IP) is None
    assert devices.location_label(SAO_PAULO_IP) == "Brazil"
    location = devices.lookup_ip(ZWOLLE_IP)
    assert location is not None
    assert location.city_names == {}
    assert location.country_code == "NL"


def test_directory_without_city_database_uses_the_country_one(
    settings: Settings, tmp_path: Path, geoip_country_db: Path
) -> None:
    shutil.copy(geoip_country_db, tmp_path / "GeoLite2-Country.mmdb")
    settings.GEOIP_PATH = tmp_path

    assert devices.location_label(ZWOLLE_IP) == "Netherlands"


@pytest.mark.usefixtures("geoip_settings")
def test_an_address_the_city_database_lacks_comes_from_the_country_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As django-user-sessions 2.x: with both databases, the Country one answers
    # for networks the City one leaves out.
    country_calls = _spy(monkeypatch, geoip2.database.Reader, "country")

    assert devices.location_label(COUNTRY_ONLY_IP) == "Germany"
    assert devices.city_label(COUNTRY_ONLY_IP) is None
    location = devices.lookup_ip(COUNTRY_ONLY_IP)
    assert location is not None
    assert location.country_code == "DE"
    assert location.country_name("de") == "Deutschland"
    # Addresses the City database has never reach the Country one.
    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"
    assert [args[1] for args in country_calls] == [COUNTRY_ONLY_IP]


def test_a_city_database_file_alone_has_no_country_fallback(
    settings: Settings, geoip_city_db: Path
) -> None:
    # GEOIP_PATH names the City file: no Country database was configured, even
    # though one lies beside it.
    settings.GEOIP_PATH = str(geoip_city_db)

    assert devices.lookup_ip(COUNTRY_ONLY_IP) is None
    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"


def test_directory_prefers_the_city_database_under_default_names(
    settings: Settings, tmp_path: Path, geoip_city_db: Path, geoip_country_db: Path
) -> None:
    shutil.copy(geoip_city_db, tmp_path / "GeoLite2-City.mmdb")
    shutil.copy(geoip_country_db, tmp_path / "GeoLite2-Country.mmdb")
    settings.GEOIP_PATH = str(tmp_path)

    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"


@pytest.mark.usefixtures("geoip_settings")
@pytest.mark.parametrize(
    ("language", "zwolle", "sao_paulo"),
    [
        ("en", "Zwolle, Netherlands", "São Paulo, Brazil"),
        ("de", "Zwolle, Niederlande", "São Paulo, Brasilien"),
        ("de-at", "Zwolle, Niederlande", "São Paulo, Brasilien"),
        ("pt-br", "Zwolle, Holanda", "São Paulo, Brasil"),
        # "pt" alone matches MaxMind's "pt-BR".
        ("pt", "Zwolle, Holanda", "São Paulo, Brasil"),
        # Each name falls back to English on its own; Japanese puts the
        # country first (its catalogue's pattern).
        ("ja", "Netherlands、ズヴォレ", "Brazil、São Paulo"),
        ("nl", "Zwolle, Netherlands", "São Paulo, Brazil"),
    ],
)
def test_names_follow_the_active_language(language: str, zwolle: str, sao_paulo: str) -> None:
    with translation.override(language):
        assert devices.location_label(ZWOLLE_IP) == zwolle
        assert devices.location_label(SAO_PAULO_IP) == sao_paulo


@pytest.mark.usefixtures("geoip_settings")
def test_language_change_after_a_cached_lookup() -> None:
    assert devices.country_label(ZWOLLE_IP) == "Netherlands"

    with translation.override("de"):
        assert devices.country_label(ZWOLLE_IP) == "Niederlande"


@pytest.mark.usefixtures("geoip_settings")
def test_location_pattern_is_translatable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_pgettext(context: str, text: str) -> str:
        assert (context, text) == ("location", "%(city)s, %(country)s")
        return "%(city)s (%(country)s)"

    monkeypatch.setattr(devices, "pgettext", fake_pgettext)

    assert devices.location_label(ZWOLLE_IP) == "Zwolle (Netherlands)"


@pytest.mark.usefixtures("geoip_settings")
def test_location_accepts_an_explicit_language() -> None:
    location = devices.lookup_ip(ZWOLLE_IP)

    assert location is not None
    assert location.country_name("de") == "Niederlande"
    assert location.country_name("zh-hans") == "Netherlands"
    assert location.city_name("ja") == "ズヴォレ"


@pytest.mark.usefixtures("geoip_settings")
@pytest.mark.parametrize(
    "ip",
    [UNLISTED_IP, "127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "fe80::1%eth0", "2001:db8:2::1"],
)
def test_addresses_missing_from_the_database(ip: str, caplog: pytest.LogCaptureFixture) -> None:
    assert devices.lookup_ip(ip) is None
    assert devices.location_label(ip) is None
    assert devices.city_label(ip) is None
    assert devices.country_label(ip) is None
    assert _device_warnings(caplog) == []


@pytest.mark.usefixtures("geoip_settings", "no_dns")
@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "not-an-ip", "example.com", "localhost", "1.2.3.4.5", "256.1.1.1",
     "203.0.113.7/24", "203.0.113.7:443", "[2001:db8:1::7]", "0x7f.1"],
)  # fmt: skip
def test_invalid_addresses_never_reach_the_database(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    city_calls = _spy(monkeypatch, geoip2.database.Reader, "city")

    assert devices.lookup_ip(value) is None
    assert devices.location_label(value) is None
    assert devices.city_label(value) is None
    assert devices.country_label(value) is None
    assert city_calls == []


@pytest.mark.usefixtures("geoip_settings")
def test_surrounding_whitespace_is_ignored() -> None:
    assert devices.location_label(f" {ZWOLLE_IP}\n") == "Zwolle, Netherlands"


@pytest.mark.usefixtures("geoip_settings")
@pytest.mark.parametrize("mapped", ["::ffff:203.0.113.7", "::FFFF:cb00:7107"])
def test_ipv4_mapped_ipv6_resolves_like_ipv4(mapped: str) -> None:
    assert devices.lookup_ip(mapped) == devices.lookup_ip(ZWOLLE_IP)
    assert devices.location_label(mapped) == "Zwolle, Netherlands"


@pytest.mark.usefixtures("geoip_settings")
def test_zone_index_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    assert devices.location_label(f"{SAO_PAULO_IP}%eth0") == "São Paulo, Brazil"
    assert _device_warnings(caplog) == []


@pytest.mark.parametrize("unset", ["absent", None, ""])
def test_no_geoip_path_is_quiet(
    unset: str | None, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    if unset == "absent":
        del settings.GEOIP_PATH
    else:
        settings.GEOIP_PATH = unset

    assert devices.lookup_ip(ZWOLLE_IP) is None
    assert devices.location_label(ZWOLLE_IP) is None
    assert caplog.records == []


@pytest.mark.parametrize("missing", ["file", "directory"])
def test_missing_database_warns_once(
    missing: str, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings.GEOIP_PATH = str(tmp_path / "nowhere.mmdb") if missing == "file" else str(tmp_path)

    for ip in (ZWOLLE_IP, SAO_PAULO_IP, GERMANY_IP, ZWOLLE_IP):
        assert devices.lookup_ip(ip) is None
        assert devices.location_label(ip) is None

    warnings = _device_warnings(caplog)
    assert len(warnings) == 1
    assert "not found" in warnings[0].getMessage()
    assert str(tmp_path) in warnings[0].getMessage()


@pytest.mark.parametrize(
    "content",
    [random.Random(0).randbytes(4096), b"", b"\xab\xcd\xefMaxMind.com" + bytes(200)],
    ids=["random", "empty", "metadata-marker-only"],
)
def test_corrupt_database_warns_once(
    content: bytes, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "GeoLite2-City.mmdb"
    database.write_bytes(content)
    settings.GEOIP_PATH = str(database)

    for ip in (ZWOLLE_IP, SAO_PAULO_IP, ZWOLLE_IP):
        assert devices.lookup_ip(ip) is None
        assert devices.location_label(ip) is None

    warnings = _device_warnings(caplog)
    assert len(warnings) == 1
    assert "could not be read" in warnings[0].getMessage()


def test_database_of_another_type_warns_once(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"autonomous_system_organization": "Test"})
    writer.to_db_file(str(tmp_path / "asn.mmdb"))
    settings.GEOIP_PATH = str(tmp_path / "asn.mmdb")

    assert devices.lookup_ip(ZWOLLE_IP) is None
    assert devices.lookup_ip(SAO_PAULO_IP) is None

    warnings = _device_warnings(caplog)
    assert len(warnings) == 1
    assert "GeoLite2-ASN" in warnings[0].getMessage()


@pytest.mark.usefixtures("geoip_settings")
def test_failing_lookups_warn_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_city(self: geoip2.database.Reader, ip: str) -> None:
        raise maxminddb.InvalidDatabaseError("The MaxMind DB file's data section is corrupt")

    monkeypatch.setattr(geoip2.database.Reader, "city", broken_city)

    for ip in (ZWOLLE_IP, SAO_PAULO_IP, GERMANY_IP):
        assert devices.location_label(ip) is None

    warnings = _device_warnings(caplog)
    assert len(warnings) == 1
    assert "data section is corrupt" in warnings[0].getMessage()


@pytest.mark.usefixtures("geoip_settings")
def test_lookups_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    city_calls = _spy(monkeypatch, geoip2.database.Reader, "city")

    first = devices.lookup_ip(ZWOLLE_IP)
    devices.location_label(ZWOLLE_IP)
    devices.city_label(ZWOLLE_IP)
    devices.country_label(f" {ZWOLLE_IP} ")
    devices.location_label("::ffff:203.0.113.7")
    devices.lookup_ip(UNLISTED_IP)
    devices.lookup_ip(UNLISTED_IP)

    assert [args[1] for args in city_calls] == [ZWOLLE_IP, UNLISTED_IP]
    assert devices.lookup_ip(ZWOLLE_IP) is first


@pytest.mark.usefixtures("geoip_settings")
def test_one_reader_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _spy(monkeypatch, geoip2.database.Reader, "__init__")
    barrier = threading.Barrier(8)
    results: list[str | None] = []

    def look_up() -> None:
        barrier.wait()
        results.append(devices.location_label(ZWOLLE_IP))
        results.append(devices.location_label(SAO_PAULO_IP))

    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(opened) == 1
    assert sorted(set(results), key=str) == ["São Paulo, Brazil", "Zwolle, Netherlands"]
    assert len(results) == 16


@pytest.mark.usefixtures("geoip_settings")
def test_reset_caches_closes_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = _spy(monkeypatch, geoip2.database.Reader, "close")
    city_calls = _spy(monkeypatch, geoip2.database.Reader, "city")
    devices.lookup_ip(ZWOLLE_IP)

    devices.reset_caches()

    assert len(closed) == 1
    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"
    assert len(city_calls) == 2


def test_changing_settings_reopens_the_database(
    settings: Settings, geoip_country_db: Path, tmp_path: Path
) -> None:
    settings.GEOIP_PATH = str(geoip_country_db)
    assert devices.location_label(ZWOLLE_IP) == "Netherlands"

    city_db = write_city_db(tmp_path / "city.mmdb")
    settings.GEOIP_PATH = str(city_db)
    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"

    settings.GEOIP_PATH = str(tmp_path)
    settings.GEOIP_CITY = "missing.mmdb"
    settings.GEOIP_COUNTRY = COUNTRY_DB_NAME
    shutil.copy(geoip_country_db, tmp_path / COUNTRY_DB_NAME)
    assert devices.location_label(ZWOLLE_IP) == "Netherlands"


def test_a_fixed_database_is_used_after_a_settings_change(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "later.mmdb"
    settings.GEOIP_PATH = str(missing)
    assert devices.location_label(ZWOLLE_IP) is None

    write_city_db(missing)
    settings.GEOIP_PATH = str(missing)

    assert devices.location_label(ZWOLLE_IP) == "Zwolle, Netherlands"
    assert len(_device_warnings(caplog)) == 1


@pytest.mark.usefixtures("geoip_settings")
def test_location_is_read_only() -> None:
    location = devices.lookup_ip(ZWOLLE_IP)

    assert location is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        location.country_code = "DE"  # type: ignore[misc]
    with pytest.raises(TypeError):
        location.city_names["en"] = "Amsterdam"  # type: ignore[index]
    assert devices.city_label(ZWOLLE_IP) == "Zwolle"


# Template filters -------------------------------------------------------------


@pytest.fixture
def render() -> Callable[[str, dict[str, object]], str]:
    engine = Engine(libraries={"user_sessions": "user_sessions.templatetags.user_sessions"})

    def render(source: str, context: dict[str, object]) -> str:
        return engine.from_string("{% load user_sessions %}" + source).render(Context(context))

    return render


def test_user_agent_filters(render: Callable[[str, dict[str, object]], str]) -> None:
    output = render("{{ ua|device }}|{{ ua|browser }}|{{ ua|platform }}", {"ua": SAFARI_IPHONE})

    assert output == "Safari on iPhone|Safari|iPhone"


@pytest.mark.usefixtures("geoip_settings")
def test_location_filters(render: Callable[[str, dict[str, object]], str]) -> None:
    source = "{{ ip|location }}|{{ ip|city }}|{{ ip|country }}"

    assert render(source, {"ip": SAO_PAULO_IP}) == "São Paulo, Brazil|São Paulo|Brazil"
    with translation.override("de"):
        assert render(source, {"ip": ZWOLLE_IP}) == "Zwolle, Niederlande|Zwolle|Niederlande"


@pytest.mark.usefixtures("geoip_settings")
def test_filters_return_none_for_unknown_values(
    render: Callable[[str, dict[str, object]], str],
) -> None:
    source = (
        "{{ ua|device|default:'?' }} {{ ua|browser|default:'?' }} {{ ua|platform|default:'?' }} "
        "{{ ip|location|default:'?' }} {{ ip|city|default:'?' }} {{ ip|country|default:'?' }} "
        "{{ missing|device|default:'?' }} {{ missing|location|default:'?' }}"
    )

    assert render(source, {"ua": "", "ip": "example.com"}) == "? ? ? ? ? ? ? ?"
    assert render("{{ ip|city|default:'?' }}", {"ip": GERMANY_IP}) == "?"


def test_traditional_chinese_never_gets_simplified_names() -> None:
    location = devices.Location(
        city_names={"en": "Beijing", "zh-CN": "北京"},
        country_names={"en": "China", "zh-CN": "中国"},
        country_code="CN",
    )
    assert location.country_name("zh-hans") == "中国"
    assert location.country_name("zh-hant") == "China"
    assert location.city_name("zh-tw") == "Beijing"


# Device icons -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["desktop", "phone", "tablet", "bot", "unknown"])
def test_each_kind_has_a_decorative_icon_in_the_text_colour(kind: str) -> None:
    from django.template.loader import render_to_string

    html = render_to_string("user_sessions/partials/device_icon.html", {"kind": kind})
    assert html.startswith("<svg ") and html.endswith("</svg>\n")
    assert f'class="us-icon us-icon--{kind}"' in html
    assert 'aria-hidden="true"' in html and 'focusable="false"' in html
    assert 'stroke="currentColor"' in html
    # Nothing an assistive technology could read, no colour of its own.
    for forbidden in ("<title", "<text", "<desc", "#", "style="):
        assert forbidden not in html.replace('"currentColor"', ""), forbidden
    # Shapes are what tell the kinds apart.
    assert html.count("<rect") + html.count("<circle") == 1


def test_icons_differ_by_kind() -> None:
    from django.template.loader import render_to_string

    shapes = {
        render_to_string("user_sessions/partials/device_icon.html", {"kind": kind}).split(">", 1)[1]
        for kind in ("desktop", "phone", "tablet", "bot", "unknown")
    }
    assert len(shapes) == 5


@pytest.mark.django_db
def test_widget_rows_show_the_icon_beside_the_label(
    user: Any, browser_factory: Callable[..., Any]
) -> None:
    from tests.test_views import parse, rows, sign_in

    for agent in (SAFARI_IPHONE, SAFARI_IPAD, GOOGLEBOT, CURL):
        sign_in(browser_factory(agent), user)
    client = sign_in(browser_factory(CHROME_WINDOWS), user)
    page = parse(client.get("/account/sessions/").content)
    kinds = {}
    for row in rows(page):
        icons = row.find_all("svg")
        assert len(icons) == 1
        icon = icons[0]
        assert icon.attrs["aria-hidden"] == "true"
        label = row.find("span", class_="us-row__device")
        kinds[label.text] = icon.attrs["class"].split()[-1]
    assert kinds == {
        "Chrome on Windows": "us-icon--desktop",
        "Safari on iPhone": "us-icon--phone",
        "Safari on iPad": "us-icon--tablet",
        "Googlebot (bot)": "us-icon--bot",
        "curl": "us-icon--unknown",
    }


@pytest.mark.parametrize("kind", ["desktop", "phone", "tablet", "bot", "unknown"])
def test_the_icon_costs_a_row_little(kind: str) -> None:
    from django.template.loader import render_to_string

    # Rendered once per row: the widget's HTML budget (benchmarks/) counts it.
    assert len(render_to_string("user_sessions/partials/device_icon.html", {"kind": kind})) < 400


@pytest.mark.django_db
def test_a_site_can_draw_its_own_icons(
    user: Any, browser_factory: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    from tests.test_views import parse, sign_in

    override = tmp_path / "user_sessions" / "partials"
    override.mkdir(parents=True)
    (override / "device_icon.html").write_text('<img alt="" src="/{{ kind }}.png">')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    client = sign_in(browser_factory(CHROME_WINDOWS), user)
    page = parse(client.get("/account/sessions/").content)
    assert page.find("img", alt="").attrs["src"] == "/desktop.png"
    assert not page.find_all("svg")
