"""Template filters for session labels; each is a thin call into ``user_sessions.devices``.

They return ``None`` when nothing is known, so pair them with ``default``:
``{{ session.user_agent|device|default:_("Unknown device") }}``.
"""

from __future__ import annotations

from django import template

from user_sessions import devices

register = template.Library()


@register.filter
def device(user_agent: str | None) -> str | None:
    """``"Chrome on Windows"``."""
    return devices.device_label(user_agent)


@register.filter
def browser(user_agent: str | None) -> str | None:
    """``"Chrome"``."""
    return devices.browser_label(user_agent)


@register.filter
def platform(user_agent: str | None) -> str | None:
    """``"Windows"``, ``"iPhone"``."""
    return devices.platform_label(user_agent)


@register.filter
def location(ip: str | None) -> str | None:
    """``"Zwolle, Netherlands"``."""
    return devices.location_label(ip)


@register.filter
def city(ip: str | None) -> str | None:
    """``"Zwolle"``."""
    return devices.city_label(ip)


@register.filter
def country(ip: str | None) -> str | None:
    """``"Netherlands"``."""
    return devices.country_label(ip)
