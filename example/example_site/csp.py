"""A strict Content Security Policy for the pages that show the widget under one.

Django 6 brings CSP with it (``django.middleware.csp``); on Django 5.2 the
django-csp package provides it. settings.py installs whichever is there; the
rest of the site sends no policy (the admin, for one, is not written for this).

The policy: scripts only with this response's nonce (and what they load, by
'strict-dynamic': the site's own address does not count), stylesheets from the
site itself or with the nonce, no inline script or style, no style="" attribute.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import django
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def _strict_policy(self_source: str, none: str, nonce: Any, strict_dynamic: str) -> dict[str, Any]:
    return {
        "default-src": [self_source],
        "script-src": [nonce, strict_dynamic],
        # Stylesheets from this site or with the nonce; no inline <style>, no style="".
        "style-src": [self_source, nonce],
        # The site's favicon is a data: URL.
        "img-src": [self_source, "data:"],
        "object-src": [none],
        "base-uri": [none],
        "form-action": [self_source],
        "frame-ancestors": [none],
    }


def strict_csp(view: View) -> View:
    """Send the strict policy with ``view``'s responses (the middleware fills in the nonce)."""
    if django.VERSION >= (6, 0):
        from django.utils.csp import CSP
        from django.views.decorators.csp import csp_override

        policy = _strict_policy(CSP.SELF, CSP.NONE, CSP.NONCE, CSP.STRICT_DYNAMIC)
        return csp_override(policy)(view)
    if importlib.util.find_spec("csp") is not None:
        from csp.constants import NONCE, NONE, SELF, STRICT_DYNAMIC
        from csp.decorators import csp

        return csp(_strict_policy(SELF, NONE, NONCE, STRICT_DYNAMIC))(view)
    return view


def nonce(request: HttpRequest) -> dict[str, Any]:
    """django-csp's nonce under the name Django 6 and django-htmx's ``{% htmx_script %}`` use.

    django-csp's own context processor calls it ``CSP_NONCE``, which
    ``{% htmx_script %}`` does not read. Returned as it is (lazy): a page
    without a nonce user then sends no nonce.
    """
    return {"csp_nonce": getattr(request, "csp_nonce", None)}
