"""Tags for the "Your devices" widget: its state, its static files and its password form.

``{% load user_sessions_widget %}``; the label filters live in ``{% load user_sessions %}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import django
from crispy_forms.templatetags.crispy_forms_tags import CrispyFormNode
from django import forms, template
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

from user_sessions.conf import app_settings
from user_sessions.widget import DeviceList, build_device_list

register = template.Library()

STYLESHEET = "user_sessions/user_sessions.css"
SCRIPT = "user_sessions/user_sessions.js"


@register.simple_tag(takes_context=True)
def user_sessions_widget(context: template.Context, heading_level: Any = None) -> DeviceList:
    """``{% user_sessions_widget as widget %}``: the signed-in user's sessions and more.

    A view that already built the state (with an open dialog, say) passes it
    as ``widget``; it is used as it is, so a page costs one sessions query.
    """
    existing = context.get("widget")
    if isinstance(existing, DeviceList):
        # A heading level given in the template still applies (an unset
        # template variable arrives as "").
        if heading_level in (None, ""):
            return existing
        return dataclasses.replace(existing, heading_level=_level(heading_level))
    request = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            "The user_sessions widget needs 'django.template.context_processors.request' "
            "in the template engine's context processors."
        )
    return build_device_list(request, heading_level=_level(heading_level))


@register.simple_tag(takes_context=True)
def user_sessions_stream_url(context: template.Context) -> str:
    """The live feed's URL for ``data-us-stream-url``; "" (poll only) without push or ASGI."""
    from user_sessions.stream import stream_url

    return stream_url(context.get("request"))


def _level(value: Any) -> int:
    try:
        return min(max(int(value), 1), 5)
    except (TypeError, ValueError):
        return 2


@register.simple_tag(takes_context=True)
def user_sessions_assets(context: template.Context) -> SafeString:
    """The widget's stylesheet and script, with the CSP nonce when there is one.

    Both are safe to emit more than once per page: browsers share the
    stylesheet and the script initialises each widget only once.
    """
    nonce = _csp_nonce(context)
    nonce_attr = format_html(' nonce="{}"', nonce) if nonce is not None else ""
    return format_html(
        '<link rel="stylesheet" href="{}"{}><script src="{}" defer{}></script>',
        static(STYLESHEET),
        nonce_attr,
        static(SCRIPT),
        nonce_attr,
    )


def _csp_nonce(context: template.Context) -> object | None:
    """The page's CSP nonce, from Django 6's built-in CSP or from django-csp; None without one.

    Both make the nonce lazily and it tests false until first used, so it is
    compared with None, never tested for truth: a widget that comes before the
    page's other nonce users (``{% htmx_script %}``) must use it all the same,
    and using it is what puts it in the header, built after the page renders.
    """
    # Django 6's csp context processor (None when its middleware is missing),
    # or a site's own processor under the name django-htmx reads too.
    nonce: object | None = context.get("csp_nonce")
    if nonce is None or _is_empty_string(nonce):
        request = context.get("request")
        # django-csp keeps it on the request; Django 6 under another name, for
        # sites without its context processor.
        nonce = getattr(request, "csp_nonce", None)
        if nonce is None and request is not None and django.VERSION >= (6, 0):
            from django.middleware.csp import get_nonce

            nonce = get_nonce(request)
    return nonce


def _is_empty_string(value: object) -> bool:
    # type(), not isinstance(): isinstance() asks a lazy nonce for its class,
    # which makes it.
    return type(value) is str and not value


@register.simple_tag(takes_context=True)
def user_sessions_form(context: template.Context, form: forms.Form) -> SafeString:
    """Render ``form`` with django-crispy-forms, in the pack its helper names.

    Not ``{% crispy %}``: that tag reads ``settings.CRISPY_TEMPLATE_PACK`` when
    the template is compiled (an error when a site never set it) and refuses
    packs missing from ``CRISPY_ALLOWED_TEMPLATE_PACKS``. The package's own
    pack has to work without either setting.
    """
    helper = getattr(form, "helper", None)
    pack = getattr(helper, "template_pack", None) or app_settings.CRISPY_TEMPLATE_PACK
    node = CrispyFormNode("form", "helper" if helper is not None else None, template_pack=pack)
    with context.push(form=form, helper=helper):
        rendered: SafeString = node.render(context)
    return rendered
