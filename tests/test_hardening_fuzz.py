"""Hostile input, fuzzed: user agents, client hints, client addresses and cookies.

Every request here goes through the whole middleware stack, either through
Django's test ``Client`` or through a WSGI environ built by hand (what a WSGI
server hands over: header values as latin-1 decoded ``str``). The properties:
no 500, nothing stored that its column would not accept, and the trusted-proxy
rule is never bypassed.

Hypothesis reuses the function-scoped fixtures for every example and the
database is rolled back only once per test, so each example finds its own rows
by the session key it was given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from django.http import parse_cookie
from django.test import Client
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from user_sessions.client import parse_ip
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

USER_AGENT_LIMIT = Session._meta.get_field("user_agent").max_length
TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]


# -- strategies ------------------------------------------------------------------


def as_wsgi(value: object) -> object:
    """A header value as PEP 3333 hands it over: the raw bytes, decoded as latin-1."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("latin-1")
    return value


# What a WSGI server can hand over: any bytes, decoded as latin-1.
latin1_text = st.binary(max_size=600).map(lambda raw: raw.decode("latin-1"))

user_agents = st.one_of(
    st.text(max_size=600),
    latin1_text,
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp"]), max_size=50),
    st.sampled_from(
        [
            "",
            " ",
            "x" * 100_000,
            "Mozilla/5.0 " + "\u00e9" * 100_000,
            "<script>alert(1)</script>",
            "\x00" * 20,
            "Chrome\r\nSet-Cookie: sessionid=stolen",
            "\ud800 lone surrogate",
            "\U0001f600" * 500,
            "'; DROP TABLE user_sessions_session; --",
        ]
    ),
)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
decorated_addresses = st.one_of(
    st.tuples(ipv4, ports).map(lambda pair: f"{pair[0]}:{pair[1]}"),
    st.tuples(ipv6, ports).map(lambda pair: f"[{pair[0]}]:{pair[1]}"),
    st.tuples(ipv6, st.text("abcdefghijklmnopqrstuvwxyz0123456789", max_size=8)).map(
        lambda pair: f"{pair[0]}%{pair[1]}"
    ),
    ipv4.map(lambda address: f"::ffff:{address}"),
    ipv4.map(lambda address: f"  {address}\t"),
)
trusted_peers = st.one_of(
    st.ip_addresses(network="10.0.0.0/8").map(str),
    st.ip_addresses(network="fd00::/8").map(str),
)
garbage = st.one_of(
    st.text(max_size=80),
    latin1_text.map(lambda text: text[:80]),
    st.sampled_from(
        [
            "unknown",
            "localhost",
            "1.2.3.4.5",
            "999.1.1.1",
            "[::1",
            "::1]:80",
            "fe80::1%",
            "%eth0",
            "1.2.3.4, 5.6.7.8",
            "0x7f.1",
            "::ffff:999.1.1.1",
            "1" * 5000,
        ]
    ),
)
addresses = st.one_of(ipv4, ipv6, decorated_addresses, trusted_peers, garbage)
forwarded_headers = st.one_of(
    st.lists(addresses, max_size=6).map(", ".join),
    st.lists(addresses, max_size=6).map(",".join),
    garbage,
)


# -- helpers -------------------------------------------------------------------


def stored_ip_is_valid(ip: str | None) -> None:
    if ip is not None:
        # What GenericIPAddressField stores: a plain address in canonical form.
        assert str(ipaddress.ip_address(ip)) == ip


def stored_user_agent_is_valid(user_agent: str | None) -> None:
    if user_agent is None:
        return
    assert len(user_agent) <= USER_AGENT_LIMIT
    assert user_agent.isprintable()
    user_agent.encode("utf-8")  # no lone surrogates: every database could store it


def canonical(value: object) -> str | None:
    address = parse_ip(value)
    return str(address) if address is not None else None


def session_key_of(response: Any) -> str:
    return str(response.cookies[django_settings.SESSION_COOKIE_NAME].value)


@contextmanager
def raised_exceptions() -> Iterator[list[BaseException]]:
    """Collect what Django's handler turned into a 500, so a failure names the cause."""
    raised: list[BaseException] = []

    def collect(sender: Any, request: Any = None, **kwargs: Any) -> None:
        import sys

        raised.append(sys.exc_info()[1])  # type: ignore[arg-type]

    got_request_exception.connect(collect)
    try:
        yield raised
    finally:
        got_request_exception.disconnect(collect)


class RawResponse:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = body

    @property
    def cookies(self) -> SimpleCookie:
        jar: SimpleCookie = SimpleCookie()
        for name, value in self.headers:
            if name.lower() == "set-cookie":
                jar.load(value)
        return jar


@pytest.fixture
def wsgi() -> Callable[..., RawResponse]:
    """Call the site the way a WSGI server does, with an environ built by hand."""
    handler = WSGIHandler()

    def call(path: str, **environ: Any) -> RawResponse:
        env: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET", **environ}
        setup_testing_defaults(env)
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            captured["status"] = int(status.split()[0])
            captured["headers"] = headers

        # As Django's test client does: the test's transaction must outlive the request.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            result = handler(env, start_response)
            body = b"".join(result)
            result.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return RawResponse(captured["status"], captured["headers"], body)

    return call


def sign_in(client: Client, user: Any) -> str:
    response = client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert response.status_code == 302
    return session_key_of(response)


# -- user agents -----------------------------------------------------------------


@FUZZ
@given(user_agent=user_agents)
def test_any_user_agent_through_the_test_client(
    engine: str, browser_factory: Any, user: Any, settings: Any, user_agent: str
):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    client = browser_factory()
    key = sign_in(client, user)
    client.defaults["HTTP_USER_AGENT"] = user_agent
    with raised_exceptions() as raised:
        assert client.get("/read/").content == f"user={user.pk}".encode(), raised
        assert client.get("/write/").status_code == 200, raised
    row = Session.objects.get(pk=key)
    stored_user_agent_is_valid(row.user_agent)
    if user_agent.isprintable() and len(user_agent) <= USER_AGENT_LIMIT:
        assert row.user_agent == user_agent  # an ordinary value is kept as it came
    assert row.device is None or isinstance(row.device, str)


@FUZZ
@given(user_agent=st.one_of(latin1_text, st.sampled_from(["x" * 100_000, "\xff" * 100_000])))
def test_any_user_agent_through_a_raw_wsgi_environ(
    engine: str, wsgi: Callable[..., RawResponse], user: Any, settings: Any, user_agent: str
):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    key = sign_in(Client(), user)
    with raised_exceptions() as raised:
        # A session change saves the client details along with the data
        # (activity is always due with a zero interval).
        response = wsgi(
            "/write/",
            HTTP_USER_AGENT=user_agent,
            REMOTE_ADDR="203.0.113.9",
            HTTP_COOKIE=f"{django_settings.SESSION_COOKIE_NAME}={key}",
        )
    assert response.status_code == 200, raised
    row = Session.objects.get(pk=key)
    assert row.ip == "203.0.113.9"
    stored_user_agent_is_valid(row.user_agent)


# -- client hints ----------------------------------------------------------------

HINT_HEADERS = (
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
    "HTTP_SEC_CH_UA_PLATFORM_VERSION",
    "HTTP_SEC_CH_UA_MODEL",
    "HTTP_SEC_CH_UA_FULL_VERSION_LIST",
)
HINTS_LIMIT = Session._meta.get_field("client_hints").max_length
# Near misses of real values: the parser's edge cases, not only noise.
hint_values = st.one_of(
    user_agents,
    st.lists(
        st.sampled_from(
            [
                '"',
                "\\",
                ";",
                ",",
                "=",
                "v",
                "?1",
                "?0",
                " ",
                "Chromium",
                "Windows",
                "15.0.0",
                "Pixel",
            ]
        ),
        max_size=40,
    ).map("".join),
    st.sampled_from(
        [
            '"Windows',
            '"Google Chrome";v="124", "Chromium";v="124"' * 40,
            '"' + "A" * 5000 + '"',
            '"Chromium";v="124", ',
            '"a\\"b";v="1"',
            "?2",
            '"Windows 11"\r\nSet-Cookie: x=1',
            '"\u00e9"',
        ]
    ),
)
hint_headers = st.dictionaries(st.sampled_from(HINT_HEADERS), hint_values, max_size=6)
# Hints that contradict the user agent they come with.
contradicting_agents = st.sampled_from(
    [
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "curl/8.5.0",
        "",
    ]
)


def stored_hints_are_valid(value: str | None) -> None:
    from user_sessions.hints import parse_stored

    if value is None:
        return
    assert len(value) <= HINTS_LIMIT
    assert value.isprintable() and value.isascii()
    # What was stored is what the labels can read back.
    assert parse_stored(value) is not None


@FUZZ
@given(headers=hint_headers, user_agent=st.one_of(st.just(None), contradicting_agents))
def test_any_client_hints_through_the_test_client(
    engine: str,
    browser_factory: Any,
    user: Any,
    settings: Any,
    headers: dict[str, str],
    user_agent: str | None,
):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    client = browser_factory() if user_agent is None else browser_factory(user_agent)
    client.defaults.update(headers)
    with raised_exceptions() as raised:
        key = sign_in(client, user)
        assert client.get("/read/").content == f"user={user.pk}".encode(), raised
        assert client.get("/account/sessions/").status_code == 200, raised
    row = Session.objects.get(pk=key)
    stored_hints_are_valid(row.client_hints)
    assert row.device is None or isinstance(row.device, str)
    if user_agent is not None:
        # Hints never relabel a browser that does not send them.
        from user_sessions.devices import device_label

        assert row.device == device_label(user_agent)


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(HINT_HEADERS), latin1_text, min_size=1))
def test_any_client_hints_through_a_raw_wsgi_environ(
    engine: str,
    wsgi: Callable[..., RawResponse],
    user: Any,
    settings: Any,
    headers: dict[str, str],
):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    key = sign_in(Client(), user)
    with raised_exceptions() as raised:
        response = wsgi(
            "/write/",
            REMOTE_ADDR="203.0.113.9",
            HTTP_COOKIE=f"{django_settings.SESSION_COOKIE_NAME}={key}",
            **headers,
        )
    assert response.status_code == 200, raised
    stored_hints_are_valid(Session.objects.get(pk=key).client_hints)


# -- client addresses ------------------------------------------------------------

PROXY_MODES: dict[str, dict[str, Any]] = {
    "direct": {},
    "one-proxy": {"USER_SESSIONS_PROXY_COUNT": 1},
    "two-proxies": {"USER_SESSIONS_PROXY_COUNT": 2},
    "trusted": {"USER_SESSIONS_TRUSTED_PROXIES": TRUSTED_PROXIES},
    "trusted-real-ip": {
        "USER_SESSIONS_TRUSTED_PROXIES": TRUSTED_PROXIES,
        "USER_SESSIONS_PROXY_HEADER": "X-Forwarded-For",
    },
}


def allowed_ips(mode: str, peer: object, header: object) -> set[str | None]:
    """Every address the configured rule may pick; the peer's own is always one."""
    peer_ip = canonical(peer)
    if mode == "direct" or peer_ip is None:
        return {peer_ip}
    if mode.startswith("trusted"):
        trusted = [ipaddress.ip_network(net) for net in TRUSTED_PROXIES]
        address = ipaddress.ip_address(peer_ip)
        if not any(address in net for net in trusted if net.version == address.version):
            # An untrusted peer never gets a header-chosen address stored.
            return {peer_ip}
    entries = header.split(",") if isinstance(header, str) else []
    return {peer_ip} | {canonical(entry) for entry in entries} - {None}


@pytest.mark.parametrize("mode", PROXY_MODES)
@FUZZ
@given(peer=addresses, header=forwarded_headers)
def test_client_address_through_the_test_client(
    engine: str, browser_factory: Any, settings: Any, mode: str, peer: str, header: str
):
    for name, value in PROXY_MODES[mode].items():
        setattr(settings, name, value)
    client = browser_factory(ip=peer, HTTP_X_FORWARDED_FOR=header)
    with raised_exceptions() as raised:
        response = client.get("/write/")
    assert response.status_code == 200, raised
    row = Session.objects.get(pk=session_key_of(response))
    stored_ip_is_valid(row.ip)
    assert row.ip in allowed_ips(mode, peer, header)


non_strings = st.one_of(
    st.none(),
    st.integers(),
    st.lists(addresses, max_size=3),
    st.tuples(ipv4, ports),
    st.binary(max_size=20),
)


@pytest.mark.parametrize("mode", ["direct", "one-proxy", "trusted"])
@FUZZ
@given(
    peer=st.one_of(addresses.map(as_wsgi), non_strings),
    header=st.one_of(forwarded_headers.map(as_wsgi), non_strings),
)
def test_client_address_through_a_raw_wsgi_environ(
    engine: str,
    wsgi: Callable[..., RawResponse],
    settings: Any,
    mode: str,
    peer: object,
    header: object,
):
    """Values no server sends (lists, numbers, ``None``) must still not break a request."""
    for name, value in PROXY_MODES[mode].items():
        setattr(settings, name, value)
    with raised_exceptions() as raised:
        response = wsgi("/write/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=header)
    assert response.status_code == 200, raised
    row = Session.objects.get(pk=session_key_of(response))
    stored_ip_is_valid(row.ip)
    assert row.ip in allowed_ips(mode, peer, header)


@pytest.mark.parametrize("header", ["1.1.1.1", "10.0.0.5", "2001:db8::1, 10.0.0.1", "fd00::1"])
def test_untrusted_peer_cannot_pick_its_address(browser_factory: Any, settings: Any, header: str):
    settings.USER_SESSIONS_TRUSTED_PROXIES = TRUSTED_PROXIES
    # Also a peer that claims to be behind one of our own proxies.
    client = browser_factory(ip="198.51.100.20", HTTP_X_FORWARDED_FOR=header)
    row = Session.objects.get(pk=session_key_of(client.get("/write/")))
    assert row.ip == "198.51.100.20"


# -- cookies ------------------------------------------------------------------

cookie_values = st.one_of(
    st.text(max_size=100),
    latin1_text,
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=32, max_size=40),
    st.sampled_from(["x" * 10_000, '"quoted"', '"\\"', "a;b=c", "=" * 50, "\\" * 40]),
)
raw_cookie_headers = st.one_of(
    cookie_values.map(lambda value: f"{django_settings.SESSION_COOKIE_NAME}={value}"),
    st.lists(st.tuples(st.text(max_size=20), cookie_values), max_size=5).map(
        lambda pairs: "; ".join(f"{name}={value}" for name, value in pairs)
    ),
    latin1_text,
).map(as_wsgi)


def no_nul_in_the_session_cookie(header: str) -> bool:
    # A NUL in the key is a known failure on PostgreSQL with its own test:
    # test_session_cookie_with_a_nul_character in this module.
    return "\x00" not in parse_cookie(header).get(django_settings.SESSION_COOKIE_NAME, "")


@FUZZ
@given(header=raw_cookie_headers)
def test_any_cookie_header_is_nobody_and_stores_nothing(
    engine: str, wsgi: Callable[..., RawResponse], user: Any, header: str
):
    assume(no_nul_in_the_session_cookie(header))
    with raised_exceptions() as raised:
        response = wsgi("/read/", HTTP_COOKIE=header, REMOTE_ADDR="203.0.113.1")
    assert response.status_code == 200, raised
    assert response.content == b"user="
    assert not Session.objects.exists()


def forged_keys(key: str, handle: str) -> list[str]:
    """Near misses of a real key, and the public handle, none of which may sign anybody in."""
    other_char = "0" if key[-1] != "0" else "1"
    return [
        handle,
        key[:-1] + other_char,
        key[:-1],
        key[1:],
        key[:8],
        key + other_char,
        key * 2,
        f'"{key[:-1]}{other_char}"',
    ]


def test_near_misses_of_another_users_key_are_nobody(engine: str, auth_client: Client, wsgi):
    key = auth_client.cookies[django_settings.SESSION_COOKIE_NAME].value
    session = Session.objects.get()
    for forged in forged_keys(key, session.handle):
        cookie = f"{django_settings.SESSION_COOKIE_NAME}={forged}"
        response = wsgi("/write/", HTTP_COOKIE=cookie, REMOTE_ADDR="198.51.100.66")
        assert response.status_code == 200, forged
        assert session_key_of(response) != key
    victim = Session.objects.get(pk=key)
    assert victim.get_decoded() == session.get_decoded()
    assert (victim.ip, victim.last_activity) == (session.ip, session.last_activity)
    # Each forged cookie got a fresh anonymous session, not the victim's.
    assert not Session.objects.exclude(pk=key).filter(user__isnull=False).exists()


@pytest.mark.parametrize(
    "cookie", ['"abcdefgh\\000ijklmnop"', "abcdefgh\x00ijklmnop"], ids=["octal-escape", "raw"]
)
def test_session_cookie_with_a_nul_character(engine: str, wsgi, cookie: str):
    header = f"{django_settings.SESSION_COOKIE_NAME}={cookie}"
    assert "\x00" in parse_cookie(header)[django_settings.SESSION_COOKIE_NAME]
    response = wsgi("/read/", HTTP_COOKIE=header, REMOTE_ADDR="203.0.113.1")
    assert response.status_code == 200
    assert response.content == b"user="
