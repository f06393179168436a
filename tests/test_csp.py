"""The widget's <link> and <script> carry the nonce of the page's Content-Security-Policy.

Both Django 6's built-in CSP and django-csp 4 make the nonce lazily: it is
false until something first uses it, and the header is built after the page
is rendered. So the widget must use the nonce wherever it sits on the page:
before ``{% htmx_script %}``, after it, or as the page's only nonce user.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import django
import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.template import Context, Template, engines
from django.test import Client, RequestFactory
from django.urls import path

from tests.test_views import parse, sign_in
from tests.urls import urlpatterns as site_urlpatterns

WIDGET = '{% include "user_sessions/widget.html" %}'
HTMX = "{% load django_htmx %}{% htmx_script %}"
LAYOUTS = {
    "widget-before-htmx": WIDGET + HTMX,
    "widget-after-htmx": HTMX + WIDGET,
    "widget-alone": WIDGET,
}


def page(request: HttpRequest, layout: str) -> HttpResponse:
    template = engines["django"].from_string("<!doctype html><body>" + LAYOUTS[layout])
    return HttpResponse(template.render(request=request))


urlpatterns = [*site_urlpatterns, path("csp/<str:layout>/", page)]
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

BASE_CONTEXT_PROCESSORS = [
    "django.template.context_processors.request",
    "django.contrib.auth.context_processors.auth",
]


def header_nonce(response: HttpResponse, directive: str) -> str | None:
    policy = response.headers["Content-Security-Policy"]
    (values,) = [part for part in policy.split(";") if part.split()[0] == directive]
    nonces = re.findall(r"'nonce-([^']+)'", values)
    assert len(nonces) <= 1, policy
    return nonces[0] if nonces else None


def widget_nonces(response: HttpResponse) -> tuple[str | None, str | None]:
    html = parse(response.content)
    link = html.find("link", href="/static/user_sessions/user_sessions.css")
    script = html.find("script", src="/static/user_sessions/user_sessions.js")
    return link.attrs.get("nonce"), script.attrs.get("nonce")


def assert_widget_uses_header_nonce(response: HttpResponse) -> None:
    assert response.status_code == 200
    header = (header_nonce(response, "style-src"), header_nonce(response, "script-src"))
    assert widget_nonces(response) == header
    # Under 'strict-dynamic' a policy without a nonce would block every script.
    assert header[1] is not None


def use_templates(settings: Any, context_processors: list[str]) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": BASE_CONTEXT_PROCESSORS + context_processors},
        }
    ]


# Django 6: django.middleware.csp -----------------------------------------------------

needs_django_6 = pytest.mark.skipif(
    django.VERSION < (6, 0), reason="Django's built-in CSP arrived in Django 6.0"
)


@pytest.fixture
def django_csp_site(settings: Any) -> Any:
    from django.utils.csp import CSP

    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.middleware.csp.ContentSecurityPolicyMiddleware",
    ]
    settings.SECURE_CSP = {
        "default-src": [CSP.SELF],
        "script-src": [CSP.NONCE, CSP.STRICT_DYNAMIC],
        "style-src": [CSP.SELF, CSP.NONCE],
    }
    return settings


@needs_django_6
@pytest.mark.parametrize("layout", LAYOUTS)
def test_django_csp_with_its_context_processor(
    django_csp_site: Any, client: Client, user: AbstractBaseUser, layout: str
) -> None:
    use_templates(django_csp_site, ["django.template.context_processors.csp"])
    sign_in(client, user)

    assert_widget_uses_header_nonce(client.get(f"/csp/{layout}/"))


@needs_django_6
@pytest.mark.parametrize("layout", LAYOUTS)
def test_django_csp_without_its_context_processor(
    django_csp_site: Any, client: Client, user: AbstractBaseUser, layout: str
) -> None:
    use_templates(django_csp_site, [])
    sign_in(client, user)

    assert_widget_uses_header_nonce(client.get(f"/csp/{layout}/"))


@needs_django_6
def test_django_csp_gives_each_response_its_own_nonce(
    django_csp_site: Any, client: Client, user: AbstractBaseUser
) -> None:
    use_templates(django_csp_site, ["django.template.context_processors.csp"])
    sign_in(client, user)

    first = client.get("/csp/widget-before-htmx/")
    second = client.get("/csp/widget-before-htmx/")

    assert_widget_uses_header_nonce(first)
    assert_widget_uses_header_nonce(second)
    assert widget_nonces(first) != widget_nonces(second)


# django-csp 4: csp.middleware.CSPMiddleware -------------------------------------------

needs_django_csp = pytest.mark.skipif(
    importlib.util.find_spec("csp") is None, reason="django-csp is not installed"
)


@pytest.fixture
def django_csp_package_site(settings: Any) -> Any:
    from csp.constants import NONCE, SELF, STRICT_DYNAMIC

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "csp.middleware.CSPMiddleware"]
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {
            "default-src": [SELF],
            "script-src": [NONCE, STRICT_DYNAMIC],
            "style-src": [SELF, NONCE],
        }
    }
    return settings


@needs_django_csp
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "context_processors", [[], ["csp.context_processors.nonce"]], ids=["plain", "csp-processor"]
)
def test_django_csp_package(
    django_csp_package_site: Any,
    client: Client,
    user: AbstractBaseUser,
    layout: str,
    context_processors: list[str],
) -> None:
    use_templates(django_csp_package_site, context_processors)
    sign_in(client, user)

    assert_widget_uses_header_nonce(client.get(f"/csp/{layout}/"))


# No CSP, or no usable nonce in the context ---------------------------------------------


def test_an_empty_context_nonce_falls_back_to_the_request() -> None:
    request = RequestFactory().get("/")
    request.csp_nonce = "from-the-request"  # type: ignore[attr-defined]
    html = Template("{% load user_sessions_widget %}{% user_sessions_assets %}").render(
        Context({"request": request, "csp_nonce": ""})
    )

    assert html.count(' nonce="from-the-request"') == 2
    assert 'nonce=""' not in html


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_csp_middleware_no_nonce(
    settings: Any, client: Client, user: AbstractBaseUser, layout: str
) -> None:
    # The csp context processor alone (Django 6) yields None: no nonce to use.
    extra = ["django.template.context_processors.csp"] if django.VERSION >= (6, 0) else []
    use_templates(settings, extra)
    sign_in(client, user)

    response = client.get(f"/csp/{layout}/")

    assert "Content-Security-Policy" not in response.headers
    assert widget_nonces(response) == (None, None)
