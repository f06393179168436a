"""Who is on the other end of a request: client IP and user agent policy.

Forwarded headers are only honoured under the rule the site configured, so a
client can never choose the address we store by sending a header itself.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger("user_sessions.client")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Matches the model field: longer values are cut, never rejected.
USER_AGENT_MAX_LENGTH = 400


def parse_ip(value: object) -> IPAddress | None:
    """Return the address in ``value`` or ``None``; never raises.

    Accepts what proxies and servers actually send: surrounding spaces, a port
    (``1.2.3.4:80``, ``[::1]:443``), an IPv6 zone id (``fe80::1%eth0``) and
    IPv4-mapped IPv6 (``::ffff:1.2.3.4``, stored as plain IPv4).
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        # One colon is only ever host:port (IPv6 always has at least two).
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=64)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.warning("Ignoring invalid USER_SESSIONS_TRUSTED_PROXIES entry %r", entry)
    return tuple(networks)


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _forwarded_chain(request: HttpRequest, header: str) -> list[str]:
    raw = request.META.get(header, "")
    if not isinstance(raw, str) or not raw:
        return []
    return [part.strip() for part in raw.split(",")]


def default_client_ip(request: HttpRequest) -> str | None:
    """The built-in resolver: ``REMOTE_ADDR`` unless a proxy rule is configured.

    With ``USER_SESSIONS_TRUSTED_PROXIES`` the chain (header entries, then
    ``REMOTE_ADDR``) is walked from the right, skipping the site's own proxies;
    the first other address is the client. With ``USER_SESSIONS_PROXY_COUNT``
    = N the client is the N-th entry from the right of the header. A chain
    shorter than the rule expects, or garbage in the part we would use, falls
    back to the nearest address we can vouch for.
    """
    remote = parse_ip(request.META.get("REMOTE_ADDR"))
    trusted = _networks(app_settings.TRUSTED_PROXIES)
    count = app_settings.PROXY_COUNT
    if remote is None or (not trusted and not count):
        return str(remote) if remote else None
    chain = _forwarded_chain(request, app_settings.PROXY_HEADER)
    if trusted:
        if not _is_trusted(remote, trusted):
            return str(remote)
        client = remote
        for entry in reversed(chain):
            address = parse_ip(entry)
            if address is None:
                break
            client = address
            if not _is_trusted(address, trusted):
                break
        return str(client)
    if len(chain) < count:
        return str(remote)
    address = parse_ip(chain[-count])
    return str(address) if address is not None else str(remote)


def get_client_ip(request: HttpRequest) -> str | None:
    """The client address as it will be stored (before privacy truncation)."""
    resolver = app_settings.CLIENT_IP_RESOLVER or default_client_ip
    try:
        value = resolver(request)
    except Exception:
        logger.exception("USER_SESSIONS_CLIENT_IP_RESOLVER raised; storing no IP")
        return None
    address = parse_ip(value)
    return str(address) if address is not None else None


def get_user_agent(request: HttpRequest) -> str:
    value = request.META.get("HTTP_USER_AGENT", "")
    if not isinstance(value, str):
        return ""
    if len(value) <= USER_AGENT_MAX_LENGTH and value.isprintable():
        return value
    # WSGI servers hand headers over as latin-1 decoded text; drop what a
    # database text column or a log line should not carry.
    cleaned = "".join(ch for ch in value[: USER_AGENT_MAX_LENGTH * 2] if ch.isprintable())
    return cleaned[:USER_AGENT_MAX_LENGTH]


def get_client_hints(request: HttpRequest) -> str | None:
    """This request's client hints as stored beside the user agent, or ``None``.

    Nothing is recorded when ``USER_SESSIONS_CLIENT_HINTS`` is off, even
    the low-entropy hints browsers send unasked.
    """
    from user_sessions import hints

    if not app_settings.CLIENT_HINTS:
        return None
    return hints.from_request(request)


def anonymize_ip(ip: str | None, mode: str | None = None) -> str | None:
    """Apply ``USER_SESSIONS_IP_PRIVACY`` to an address about to be stored."""
    mode = mode or app_settings.IP_PRIVACY
    if ip is None or mode == "full":
        return ip
    if mode == "none":
        return None
    address = parse_ip(ip)
    if address is None:
        return None
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)
