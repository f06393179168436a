from __future__ import annotations

import pytest
from django.test import RequestFactory

from user_sessions.client import anonymize_ip, get_client_ip, get_user_agent, parse_ip

rf = RequestFactory()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:8080", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("", None),
        ("unknown", None),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("999.1.1.1", None),
        ("[2001:db8::1", None),
        ("1" * 500, None),
        (None, None),
        (12345, None),
    ],
)
def test_parse_ip(raw: object, expected: str | None) -> None:
    parsed = parse_ip(raw)
    assert (str(parsed) if parsed else None) == expected


def test_remote_addr_by_default_ignores_forwarded_header() -> None:
    request = rf.get("/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert get_client_ip(request) == "198.51.100.1"


def test_proxy_count_takes_nth_from_the_right(settings) -> None:
    settings.USER_SESSIONS_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    # The client forged 6.6.6.6; our one proxy appended the real peer.
    assert get_client_ip(request) == "203.0.113.9"
    settings.USER_SESSIONS_PROXY_COUNT = 2
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.0.0.1"
    )
    assert get_client_ip(request) == "203.0.113.9"


def test_proxy_count_with_short_or_garbage_chain_falls_back_to_peer(settings) -> None:
    settings.USER_SESSIONS_PROXY_COUNT = 2
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert get_client_ip(request) == "10.0.0.2"
    settings.USER_SESSIONS_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="<script>")
    assert get_client_ip(request) == "10.0.0.2"
    request = rf.get("/", REMOTE_ADDR="10.0.0.2")
    assert get_client_ip(request) == "10.0.0.2"


def test_custom_header_name(settings) -> None:
    settings.USER_SESSIONS_PROXY_COUNT = 1
    settings.USER_SESSIONS_PROXY_HEADER = "X-Real-IP"
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_REAL_IP="2001:db8::5")
    assert get_client_ip(request) == "2001:db8::5"


def test_trusted_proxies_walk_the_chain(settings) -> None:
    settings.USER_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.1.1.1"
    )
    assert get_client_ip(request) == "203.0.113.9"


def test_trusted_proxies_ignore_header_from_untrusted_peer(settings) -> None:
    settings.USER_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="203.0.113.50", HTTP_X_FORWARDED_FOR="1.1.1.1")
    assert get_client_ip(request) == "203.0.113.50"


def test_trusted_proxies_stop_at_garbage(settings) -> None:
    settings.USER_SESSIONS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, nonsense")
    # The nearest address we can vouch for is our own proxy.
    assert get_client_ip(request) == "10.0.0.2"


def test_invalid_trusted_proxy_entry_is_ignored_with_warning(settings, caplog) -> None:
    settings.USER_SESSIONS_TRUSTED_PROXIES = ["not-a-net", "10.0.0.0/8"]
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert get_client_ip(request) == "203.0.113.9"


def resolver_returning(value):
    return lambda request: value


def test_pluggable_resolver_output_is_validated(settings) -> None:
    settings.USER_SESSIONS_CLIENT_IP_RESOLVER = resolver_returning("2001:db8::7")
    assert get_client_ip(rf.get("/")) == "2001:db8::7"
    settings.USER_SESSIONS_CLIENT_IP_RESOLVER = resolver_returning("drop table")
    assert get_client_ip(rf.get("/")) is None


def test_pluggable_resolver_by_dotted_path(settings) -> None:
    settings.USER_SESSIONS_CLIENT_IP_RESOLVER = "tests.test_client.cloudflare_resolver"
    request = rf.get("/", HTTP_CF_CONNECTING_IP="203.0.113.77")
    assert get_client_ip(request) == "203.0.113.77"


def cloudflare_resolver(request):
    return request.META.get("HTTP_CF_CONNECTING_IP")


def test_resolver_that_raises_stores_no_ip(settings, caplog) -> None:
    def broken(request):
        raise RuntimeError("boom")

    settings.USER_SESSIONS_CLIENT_IP_RESOLVER = broken
    assert get_client_ip(rf.get("/")) is None
    assert "raised" in caplog.text


def test_user_agent_is_truncated_and_cleaned() -> None:
    assert get_user_agent(rf.get("/", HTTP_USER_AGENT="x" * 5000)) == "x" * 400
    assert get_user_agent(rf.get("/", HTTP_USER_AGENT="a\x00b\nc\x7fd")) == "abcd"
    assert get_user_agent(rf.get("/")) == ""


@pytest.mark.parametrize(
    ("mode", "ip", "expected"),
    [
        ("full", "203.0.113.77", "203.0.113.77"),
        ("truncate", "203.0.113.77", "203.0.113.0"),
        ("truncate", "2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("none", "203.0.113.77", None),
        ("truncate", None, None),
    ],
)
def test_anonymize_ip(mode: str, ip: str | None, expected: str | None) -> None:
    assert anonymize_ip(ip, mode) == expected
