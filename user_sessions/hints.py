"""User-Agent Client Hints: which ones to ask for, and what of them is stored.

Chromium freezes the user agent ("Windows NT 10.0" on Windows 11, "Android
10; K" on every phone) and tells the truth only in ``Sec-CH-UA-*`` headers,
the high-entropy ones only to a site that asked with ``Accept-CH``.

Headers are parsed as RFC 8941 structured fields by a strict, bounded parser:
anything malformed, oversized or outside printable ASCII is dropped, never
repaired. What is stored is a short dictionary of this module's own making
(``platform="Windows", platform-version="15.0.0", browser="Chrome"``), so a
stored value always parses and never carries what a client chose to send
beyond the few fields the labels use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = [
    "ACCEPT_CH",
    "CLIENT_HINTS_MAX_LENGTH",
    "ClientHints",
    "ask_for_hints",
    "from_request",
    "parse_stored",
]

# The low-entropy hints come unasked; naming them too documents what is read.
REQUESTED_HINTS = (
    "Sec-CH-UA",
    "Sec-CH-UA-Mobile",
    "Sec-CH-UA-Platform",
    "Sec-CH-UA-Platform-Version",
    "Sec-CH-UA-Model",
    "Sec-CH-UA-Full-Version-List",
)
ACCEPT_CH = ", ".join(REQUESTED_HINTS)

# Matches the model field. Each stored value is capped well below it, so the
# serialised dictionary always fits.
CLIENT_HINTS_MAX_LENGTH = 255
_VALUE_MAX_LENGTH = {"platform": 24, "platform-version": 24, "model": 48, "browser": 32}
_BROWSER_VERSION_MAX_LENGTH = 24
_STORED_MAX_LENGTH = {**_VALUE_MAX_LENGTH, "browser-version": _BROWSER_VERSION_MAX_LENGTH}

# Real headers are well under this; a longer one is noise or an attack and is
# not parsed at all.
_HEADER_MAX_LENGTH = 512
_BRANDS_MAX = 8

_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,3})?")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")

# Brands Chromium sends for every browser built on it, and the random
# "GREASE" brand it adds so that sites do not match the list exactly.
_GREASE = re.compile(r"not.?a.?brand", re.IGNORECASE)
_GENERIC_BRANDS = frozenset({"Chromium"})
_BRAND_NAMES = {
    "Google Chrome": "Chrome",
    "Microsoft Edge": "Edge",
    "Opera GX": "Opera",
    "Samsung Internet": "Samsung Internet",
    "YaBrowser": "Yandex Browser",
}


class _Malformed(ValueError):
    pass


class _Quoted(str):
    """An ``sf-string``, as opposed to a token or number, which read as plain ``str``."""

    __slots__ = ()


@dataclass(frozen=True)
class ClientHints:
    """What a browser said about itself, as far as the labels use it."""

    platform: str | None = None
    platform_version: str | None = None
    model: str | None = None
    mobile: bool | None = None
    browser: str | None = None
    browser_version: str | None = None

    def serialise(self) -> str | None:
        """The stored form, or ``None`` when nothing is known."""
        members = []
        for key, value in (
            ("platform", self.platform),
            ("platform-version", self.platform_version),
            ("model", self.model),
            ("browser", self.browser),
            ("browser-version", self.browser_version),
        ):
            value = _fit(value, _STORED_MAX_LENGTH[key])
            if value:
                members.append(f"{key}={_quote(value)}")
        if self.mobile is not None:
            members.append(f"mobile={'?1' if self.mobile else '?0'}")
        text = ", ".join(members)
        # Cutting would leave a value that no longer parses; the caps keep
        # this from happening, the check keeps it from ever being stored.
        return text if text and len(text) <= CLIENT_HINTS_MAX_LENGTH else None


# Parsing ----------------------------------------------------------------------


def _quote(value: str) -> str:
    # _fit() keeps quotes and backslashes out, so nothing needs escaping.
    return f'"{value}"'


class _Reader:
    """A cursor over one header value: RFC 8941 lists and dictionaries of bare items."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip(self, characters: str = " \t") -> None:
        while self.at < len(self.text) and self.text[self.at] in characters:
            self.at += 1

    def done(self) -> bool:
        return self.at >= len(self.text)

    def bare_item(self) -> str | bool:
        if self.done():
            raise _Malformed
        char = self.text[self.at]
        if char == '"':
            return self.string()
        if char == "?":
            value = self.text[self.at + 1 : self.at + 2]
            if value not in ("0", "1"):
                raise _Malformed
            self.at += 2
            return value == "1"
        for pattern in (_TOKEN, _NUMBER):
            match = pattern.match(self.text, self.at)
            if match:
                self.at = match.end()
                return match.group()
        raise _Malformed

    def string(self) -> str:
        self.at += 1
        out = []
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if char == "\\":
                if self.at >= len(self.text) or self.text[self.at] not in '"\\':
                    raise _Malformed
                out.append(self.text[self.at])
                self.at += 1
            elif char == '"':
                return _Quoted("".join(out))
            elif not " " <= char <= "~":
                raise _Malformed
            else:
                out.append(char)
        raise _Malformed  # unbalanced quote

    def key(self) -> str:
        match = _KEY.match(self.text, self.at)
        if not match:
            raise _Malformed
        self.at = match.end()
        return match.group()

    def parameters(self) -> dict[str, str | bool]:
        params: dict[str, str | bool] = {}
        while not self.done() and self.text[self.at] == ";":
            self.at += 1
            self.skip(" ")
            name = self.key()
            value: str | bool = True
            if not self.done() and self.text[self.at] == "=":
                self.at += 1
                value = self.bare_item()
            params[name] = value
        return params

    def members(self, *, keyed: bool) -> list[tuple[str | None, str | bool, dict[str, str | bool]]]:
        result: list[tuple[str | None, str | bool, dict[str, str | bool]]] = []
        self.skip(" ")
        while not self.done():
            name = self.key() if keyed else None
            value: str | bool = True
            if not keyed or (not self.done() and self.text[self.at] == "="):
                if keyed:
                    self.at += 1
                value = self.bare_item()
            result.append((name, value, self.parameters()))
            self.skip()
            if self.done():
                break
            if self.text[self.at] != ",":
                raise _Malformed
            self.at += 1
            self.skip()
            if self.done():
                raise _Malformed  # trailing comma
        return result


def _header_text(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > _HEADER_MAX_LENGTH:
        return None
    text = value.strip(" \t")
    return text or None


def _string(value: object) -> str | None:
    """An ``sf-string`` header's value, or ``None`` if it is missing or malformed."""
    text = _header_text(value)
    if text is None or not text.startswith('"'):
        return None
    reader = _Reader(text)
    try:
        result = reader.string()
    except _Malformed:
        return None
    return result if reader.done() else None


def _boolean(value: object) -> bool | None:
    text = _header_text(value)
    return {"?0": False, "?1": True}.get(text or "")


def _brands(value: object) -> list[tuple[str, str | None]]:
    """``"Google Chrome";v="124"`` and its siblings as (brand, version) pairs."""
    text = _header_text(value)
    if text is None:
        return []
    try:
        members = _Reader(text).members(keyed=False)
    except _Malformed:
        return []
    brands: list[tuple[str, str | None]] = []
    for _name, item, params in members[:_BRANDS_MAX]:
        version = params.get("v")
        # Brands are strings; a bare token there is not a browser's header.
        if isinstance(item, _Quoted) and item:
            brands.append((item, version if isinstance(version, str) else None))
    return brands


def _fit(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    value = value.strip()
    # A value cut in the middle would mislead (a model "Pixel 8 Pr"): too
    # long is dropped. No real brand, model or version has a quote or a
    # backslash; keeping them out keeps the stored form short and plain.
    if not value or len(value) > limit or '"' in value or "\\" in value:
        return None
    return value


def _browser(brands: list[tuple[str, str | None]]) -> tuple[str | None, str | None]:
    """The browser people know (Edge, not Chromium), and its version."""
    named = [(brand, version) for brand, version in brands if not _GREASE.search(brand)]
    specific = [pair for pair in named if pair[0] not in _GENERIC_BRANDS]
    if not named:
        return None, None
    brand, version = (specific or named)[0]
    name = _fit(_BRAND_NAMES.get(brand, brand), _VALUE_MAX_LENGTH["browser"])
    if name is None:
        return None, None
    return name, _fit(version, _BROWSER_VERSION_MAX_LENGTH)


def from_headers(meta: dict[str, object]) -> ClientHints | None:
    """The hints in a request's ``META``, or ``None`` when it sent none we can use."""
    full = _brands(meta.get("HTTP_SEC_CH_UA_FULL_VERSION_LIST"))
    browser, browser_version = _browser(full or _brands(meta.get("HTTP_SEC_CH_UA")))
    hints = ClientHints(
        platform=_fit(_string(meta.get("HTTP_SEC_CH_UA_PLATFORM")), _VALUE_MAX_LENGTH["platform"]),
        platform_version=_fit(
            _string(meta.get("HTTP_SEC_CH_UA_PLATFORM_VERSION")),
            _VALUE_MAX_LENGTH["platform-version"],
        ),
        model=_fit(_string(meta.get("HTTP_SEC_CH_UA_MODEL")), _VALUE_MAX_LENGTH["model"]),
        mobile=_boolean(meta.get("HTTP_SEC_CH_UA_MOBILE")),
        browser=browser,
        browser_version=browser_version,
    )
    if hints == ClientHints():
        return None
    return hints


def from_request(request: HttpRequest) -> str | None:
    """What to store about this request's hints (``None``: it sent none)."""
    hints = from_headers(request.META)
    return hints.serialise() if hints is not None else None


def parse_stored(value: object) -> ClientHints | None:
    """A stored value back as ``ClientHints``; ``None`` for empty or unreadable values."""
    if not isinstance(value, str) or not value or len(value) > CLIENT_HINTS_MAX_LENGTH:
        return None
    try:
        members = _Reader(value).members(keyed=True)
    except _Malformed:
        return None
    fields: dict[str, str | bool] = {name: item for name, item, _params in members if name}
    texts = {
        name: item if isinstance(item, str) and item else None for name, item in fields.items()
    }
    mobile = fields.get("mobile")
    hints = ClientHints(
        platform=texts.get("platform"),
        platform_version=texts.get("platform-version"),
        model=texts.get("model"),
        mobile=mobile if isinstance(mobile, bool) else None,
        browser=texts.get("browser"),
        browser_version=texts.get("browser-version"),
    )
    return None if hints == ClientHints() else hints


# Asking -----------------------------------------------------------------------


def ask_for_hints(response: HttpResponseBase) -> None:
    """Ask the browser for the high-entropy hints on its next requests to this site.

    The middleware calls this for every HTML page (sign-in pages and pages
    with the widget among them): the browser keeps the preference for the
    whole site, so asking on fewer pages would send no fewer hints, and the
    sign-in a page leads to carries them. A response that sets its own
    ``Accept-CH`` keeps it.
    """
    if not app_settings.CLIENT_HINTS or response.has_header("Accept-CH"):
        return
    if not response.get("Content-Type", "").startswith("text/html"):
        return
    response["Accept-CH"] = ACCEPT_CH
