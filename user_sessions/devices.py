"""Labels for a session's user agent ("Chrome on Windows") and address ("Zwolle, Netherlands").

Both are cached per process: the device list re-renders every few seconds for
the same handful of strings. Caches hold language-independent data (the parsed
user agent, the database record); labels are translated at call time.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import geoip2.database
import geoip2.errors
import geoip2.models
import maxminddb
import ua_parser
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import get_language, pgettext
from user_agents.parsers import (
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

from user_sessions.client import USER_AGENT_MAX_LENGTH
from user_sessions.hints import ClientHints, parse_stored

__all__ = [
    "MAX_USER_AGENT_LENGTH",
    "Location",
    "browser_label",
    "city_label",
    "country_label",
    "device_kind",
    "device_label",
    "location_label",
    "lookup_ip",
    "parse_user_agent",
    "platform_label",
    "reset_caches",
    "warm_up",
]

logger = logging.getLogger(__name__)

# Real browsers send well under 400 characters; cutting longer strings keeps a
# crafted multi-kilobyte header from costing milliseconds of regex time.
MAX_USER_AGENT_LENGTH = USER_AGENT_MAX_LENGTH

_WARM_UP_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)

# ua-parser names mobile builds separately; people know them by the browser's name.
_BROWSER_NAMES = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome WebView",
    "Edge Mobile": "Edge",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "IE": "Internet Explorer",
    "IE Mobile": "Internet Explorer",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Opera Mobile": "Opera",
}

_PLATFORM_NAMES = {
    "Chrome OS": "ChromeOS",
    "Mac OS X": "macOS",
}

# "iOS" says less than the device it runs on, and iPhone and iPad users think of those.
_APPLE_DEVICES = frozenset({"iPhone", "iPad", "iPod"})

_UNKNOWN = "Other"


# User agents ------------------------------------------------------------------


def parse_user_agent(value: str | None) -> UserAgent | None:
    """Parse ``value`` into a ``user_agents`` object, or ``None`` for an empty value.

    The result is cached and shared between callers: treat it as read-only.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()[:MAX_USER_AGENT_LENGTH]
    if not text:
        return None
    return _parse_truncated(text)


@functools.lru_cache(maxsize=2048)
def _parse_truncated(text: str) -> UserAgent:
    try:
        result = ua_parser.parse(text)
    except UnicodeEncodeError:
        # The compiled matcher takes UTF-8, which lone surrogates (only ever
        # noise in a header) cannot be encoded to.
        result = ua_parser.parse(text.encode("utf-8", "replace").decode("utf-8"))
    # UserAgent.__init__ parses again through ua-parser's legacy API, which
    # skips the compiled (Rust) resolver, so the object is filled in directly.
    agent = UserAgent.__new__(UserAgent)
    agent.ua_string = text
    browser = result.user_agent
    os = result.os
    device = result.device
    agent.browser = (
        parse_browser(
            browser.family, browser.major, browser.minor, browser.patch, browser.patch_minor
        )
        if browser
        else parse_browser(_UNKNOWN)
    )
    agent.os = (
        parse_operating_system(os.family, os.major, os.minor, os.patch, os.patch_minor)
        if os
        else parse_operating_system(_UNKNOWN)
    )
    agent.device = (
        parse_device(device.family, device.brand, device.model)
        if device
        else parse_device(_UNKNOWN, None, None)
    )
    return agent


def warm_up() -> None:
    """Build ua-parser's regex set now rather than in the first request (~200 ms)."""
    ua_parser.parse(_WARM_UP_USER_AGENT)


def browser_label(user_agent: str | None) -> str | None:
    """The browser's name without a version ("Chrome"), or ``None`` when unknown."""
    agent = parse_user_agent(user_agent)
    return _browser_name(agent) if agent is not None else None


def platform_label(user_agent: str | None) -> str | None:
    """The device or operating system ("iPhone", "macOS", "Windows"), or ``None``."""
    agent = parse_user_agent(user_agent)
    return _platform_name(agent) if agent is not None else None


def device_label(user_agent: str | None, client_hints: str | None = None) -> str | None:
    """A short description such as "Chrome on Windows 11" or "Googlebot (bot)".

    The user agent alone never gives a version: browsers with a reduced user
    agent freeze their OS version (macOS 10.15.7, Android 10), so showing one
    would mislead. Client hints (``Session.client_hints``) that agree with the
    user agent give the real one ("Windows 11", "macOS 15") and a phone's
    model ("Pixel 8").
    """
    agent = parse_user_agent(user_agent)
    if agent is None:
        return None
    browser = _browser_name(agent)
    if agent.is_bot:
        if browser is None:
            return pgettext("device", "Bot")
        return pgettext("device", "%(name)s (bot)") % {"name": browser}
    platform = _platform_name(agent)
    hints = _agreeing_hints(agent, client_hints)
    if hints is not None:
        # "Chromium" alone is what every Chromium build says (Debian's, an
        # automated browser's); the user agent's "Chrome" is what people know.
        if hints.browser and hints.browser != "Chromium":
            browser = hints.browser
        platform = _hinted_platform(hints) or platform
    if browser and platform:
        return pgettext("device", "%(browser)s on %(platform)s") % {
            "browser": browser,
            "platform": platform,
        }
    return browser or platform


def device_kind(user_agent: str | None, client_hints: str | None = None) -> str:
    """Which icon the device gets: ``desktop``, ``phone``, ``tablet``, ``bot`` or ``unknown``."""
    agent = parse_user_agent(user_agent)
    if agent is None:
        return "unknown"
    if agent.is_bot:
        return "bot"
    hints = _agreeing_hints(agent, client_hints)
    if hints is not None and hints.mobile is not None:
        # Chrome on an Android tablet sends the same reduced user agent as
        # on a phone, minus "Mobile"; the hint says which it is.
        if hints.mobile:
            return "phone"
        if hints.platform == "Android":
            return "tablet"
    if agent.is_tablet:
        return "tablet"
    if agent.is_mobile:
        return "phone"
    if agent.is_pc:
        return "desktop"
    return "unknown"


# What ua-parser calls the platforms client hints name.
_HINT_PLATFORMS = {
    "Windows": frozenset({"Windows"}),
    "macOS": frozenset({"Mac OS X"}),
    "Android": frozenset({"Android"}),
    "Chrome OS": frozenset({"Chrome OS"}),
    "Linux": frozenset({"Linux", "Ubuntu", "Fedora", "Debian", "Arch Linux"}),
}
# Browsers that send client hints. Their user agents say "Chrome" (or their
# own name), so a hint naming another brand of the family is believed.
_CHROMIUM_BROWSERS = frozenset({"Chrome", "Chromium", "Chrome WebView"})


def _agreeing_hints(agent: UserAgent, client_hints: str | None) -> ClientHints | None:
    """The stored hints, if they describe the browser the user agent names.

    A client sets both headers itself, so neither is proof; but hints that
    contradict the user agent (a Firefox sending Chrome's hints, Windows
    hints beside a Mac user agent) are noise, and the user agent label stays.
    """
    hints = _parse_hints(client_hints) if isinstance(client_hints, str) else None
    if hints is None or hints.platform not in _HINT_PLATFORMS:
        return None
    if agent.os.family not in _HINT_PLATFORMS[hints.platform]:
        return None
    browser = _browser_name(agent)
    if hints.browser is not None and hints.browser != browser and browser not in _CHROMIUM_BROWSERS:
        return None
    return hints


@functools.lru_cache(maxsize=2048)
def _parse_hints(client_hints: str) -> ClientHints | None:
    # Each row's label and icon both read its hints, at every refresh; the
    # parse costs tens of microseconds, a cache hit well under one.
    return parse_stored(client_hints)


def _hinted_platform(hints: ClientHints) -> str | None:
    major = _major_version(hints.platform_version)
    if hints.platform == "Windows":
        # Windows reports its platform version, not its marketing one: 1-10
        # are Windows 10 releases, 13 and up Windows 11 (0 is 7, 8 or 8.1).
        if major is None or major == 0:
            return "Windows"
        return "Windows 11" if major >= 13 else "Windows 10"
    if hints.platform == "macOS":
        if major is None:
            return "macOS"
        if major == 10:
            minor = (hints.platform_version or "").split(".")[1:2]
            return f"macOS 10.{minor[0]}" if minor and minor[0].isdigit() else "macOS"
        return f"macOS {major}"
    if hints.platform == "Android":
        if hints.model:
            return hints.model
        return f"Android {major}" if major else "Android"
    if hints.platform == "Chrome OS":
        # Its platform version is a build number nobody recognises.
        return "ChromeOS"
    return hints.platform


def _major_version(version: str | None) -> int | None:
    head = (version or "").split(".", 1)[0]
    if not head.isdigit() or len(head) > 4:
        return None
    return int(head)


def _browser_name(agent: UserAgent) -> str | None:
    family: str = agent.browser.family
    if family == _UNKNOWN:
        return None
    return _BROWSER_NAMES.get(family, family)


def _platform_name(agent: UserAgent) -> str | None:
    if agent.device.family in _APPLE_DEVICES:
        return str(agent.device.family)
    family: str = agent.os.family
    if family == _UNKNOWN:
        return None
    return _PLATFORM_NAMES.get(family, family)


# Locations --------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """What the GeoIP database knows about an address.

    Names are keyed by MaxMind's locale codes ("en", "de", "pt-BR", "zh-CN").
    """

    city_names: Mapping[str, str]
    country_names: Mapping[str, str]
    country_code: str | None

    def city_name(self, language: str | None = None) -> str | None:
        """The city in ``language`` (default: the active language), or ``None``."""
        return _pick_name(self.city_names, language or get_language())

    def country_name(self, language: str | None = None) -> str | None:
        """The country in ``language`` (default: the active language), or ``None``."""
        return _pick_name(self.country_names, language or get_language())


def lookup_ip(ip: str | None) -> Location | None:
    """Look ``ip`` up in the GeoIP database; ``None`` if it is not an address or not listed.

    Never raises and never resolves host names; a missing or unreadable
    database is logged once and then treated as "unknown".
    """
    address = _parse_address(ip)
    if address is None:
        return None
    return _lookup_address(address.compressed)


def location_label(ip: str | None) -> str | None:
    """City and country ("Zwolle, Netherlands"), or whichever of the two is known."""
    location = lookup_ip(ip)
    if location is None:
        return None
    city = location.city_name()
    country = location.country_name()
    if city and country:
        return pgettext("location", "%(city)s, %(country)s") % {"city": city, "country": country}
    return country or city


def city_label(ip: str | None) -> str | None:
    location = lookup_ip(ip)
    return location.city_name() if location is not None else None


def country_label(ip: str | None) -> str | None:
    location = lookup_ip(ip)
    return location.country_name() if location is not None else None


def _parse_address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Stricter than client.parse_ip on purpose: a stored value is a bare
    # address, and anything else (a port, brackets) is not looked up.
    # Validating first keeps host names away from any code that might resolve them.
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # Dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d, which
            # not every database maps back onto its IPv4 records.
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


@functools.lru_cache(maxsize=4096)
def _lookup_address(address: str) -> Location | None:
    database = _database.get()
    if database is None:
        return None
    reader, is_city = database
    record: geoip2.models.City | geoip2.models.Country
    try:
        try:
            record = reader.city(address) if is_city else reader.country(address)
        except geoip2.errors.AddressNotFoundError:
            # Networks the City database leaves out may be in the Country
            # one (as django-user-sessions 2.x looked them up).
            country_reader = _database.country_fallback()
            if country_reader is None:
                return None
            record = country_reader.country(address)
    except geoip2.errors.AddressNotFoundError:
        return None
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as error:
        _database.warn_once("GeoIP lookup failed in %s: %s", _database.path, error)
        return None
    city_names = dict(record.city.names) if isinstance(record, geoip2.models.City) else {}
    country_names = dict(record.country.names)
    if not city_names and not country_names:
        return None
    return Location(
        city_names=MappingProxyType(city_names),
        country_names=MappingProxyType(country_names),
        country_code=record.country.iso_code,
    )


TRADITIONAL_CHINESE = frozenset({"zh-hant", "zh-tw", "zh-hk", "zh-mo"})


def _pick_name(names: Mapping[str, str], language: str | None) -> str | None:
    if not names:
        return None
    # Django spells languages "pt-br" and "zh-hans"; MaxMind uses "pt-BR" and "zh-CN".
    by_code = {code.lower(): name for code, name in names.items()}
    wanted = (language or "en").lower().replace("_", "-")
    base = wanted.split("-", 1)[0]
    for code in (wanted, base):
        if code in by_code:
            return by_code[code]
    # MaxMind's only Chinese names are Simplified ("zh-CN"): a Traditional
    # Chinese page reads English names better than the other script.
    if wanted not in TRADITIONAL_CHINESE:
        for code, name in by_code.items():
            if code.split("-", 1)[0] == base:
                return name
    return by_code.get("en")


class _GeoIPDatabase:
    """The one process-wide reader, opened on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = False
        self._warned = False
        self._reader: geoip2.database.Reader | None = None
        self._is_city = False
        self.path: Path | None = None
        # The Country database beside the City one, for addresses the City
        # database lacks; opened on the first such address.
        self._country_path: Path | None = None
        self._country_reader: geoip2.database.Reader | None = None
        self._country_opened = False

    def get(self) -> tuple[geoip2.database.Reader, bool] | None:
        """The reader and whether it is a City database, or ``None`` if unavailable."""
        if not self._opened:
            with self._lock:
                if not self._opened:
                    self._open()
                    self._opened = True
        reader = self._reader
        if reader is None:
            return None
        return reader, self._is_city

    def country_fallback(self) -> geoip2.database.Reader | None:
        """The Country database of a GEOIP_PATH folder that also holds the City one."""
        if not self._country_opened:
            with self._lock:
                if not self._country_opened:
                    self._country_reader = self._open_country()
                    self._country_opened = True
        return self._country_reader

    def close(self) -> None:
        with self._lock:
            for reader in (self._reader, self._country_reader):
                if reader is not None:
                    reader.close()
            self._reader = self._country_reader = None
            self._opened = self._country_opened = False
            self._warned = False
            self.path = self._country_path = None

    def _open_country(self) -> geoip2.database.Reader | None:
        path = self._country_path
        if path is None or not self._is_city or not path.is_file():
            return None
        try:
            reader = geoip2.database.Reader(str(path))
        except (maxminddb.InvalidDatabaseError, ValueError, OSError) as error:
            self.warn_once("GeoIP database %s could not be read: %s", path, error)
            return None
        if "Country" not in reader.metadata().database_type:
            reader.close()
            return None
        return reader

    def warn_once(self, message: str, *args: Any) -> None:
        # A broken database fails every request alike; one line is enough to act on.
        if not self._warned:
            self._warned = True
            logger.warning(message, *args)

    def _open(self) -> None:
        configured = getattr(settings, "GEOIP_PATH", None)
        if not configured:
            return
        path = self.path = _database_path(Path(configured))
        if path.parent == Path(configured):
            self._country_path = path.parent / getattr(
                settings, "GEOIP_COUNTRY", "GeoLite2-Country.mmdb"
            )
        if not path.is_file():
            self.warn_once("GeoIP database not found at %s; locations will not be shown.", path)
            return
        try:
            reader = geoip2.database.Reader(str(path))
        except (maxminddb.InvalidDatabaseError, ValueError, OSError) as error:
            self.warn_once("GeoIP database %s could not be read: %s", path, error)
            return
        database_type = reader.metadata().database_type
        if "City" in database_type:
            self._is_city = True
        elif "Country" in database_type:
            self._is_city = False
        else:
            reader.close()
            self.warn_once(
                "GeoIP database %s is of type %r, not a City or Country database.",
                path,
                database_type,
            )
            return
        self._reader = reader


def _database_path(configured: Path) -> Path:
    # Same reading as django.contrib.gis.geoip2: a file is used as it is; in a
    # directory the City database is preferred, as it also names the country.
    if not configured.is_dir():
        return configured
    city = configured / getattr(settings, "GEOIP_CITY", "GeoLite2-City.mmdb")
    country = configured / getattr(settings, "GEOIP_COUNTRY", "GeoLite2-Country.mmdb")
    if not city.is_file() and country.is_file():
        return country
    return city


_database = _GeoIPDatabase()

_GEOIP_SETTINGS = frozenset({"GEOIP_PATH", "GEOIP_CITY", "GEOIP_COUNTRY"})


def _reset_locations() -> None:
    _database.close()
    _lookup_address.cache_clear()


def reset_caches() -> None:
    """Forget parsed user agents and client hints, looked-up addresses; close the GeoIP reader."""
    _parse_truncated.cache_clear()
    _parse_hints.cache_clear()
    _reset_locations()


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in _GEOIP_SETTINGS:
        _reset_locations()
