from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from example_site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    # The mail the site would have sent (settings.EXAMPLE_OUTBOX_DIR): a demo, not a feature.
    path("outbox/", views.outbox, name="outbox"),
    # The same page on htmx 4, so the widget can be tried (and tested) on both.
    path("account/htmx4/", views.account, {"htmx_version": 4}, name="account-htmx4"),
    # The same page under a strict Content Security Policy (example_site/csp.py).
    path("account/strict-csp/", views.account_strict_csp, name="account-strict-csp"),
    path(
        "account/htmx4/strict-csp/",
        views.account_strict_csp,
        {"htmx_version": 4},
        name="account-htmx4-strict-csp",
    ),
    # user_sessions: the widget's endpoints.
    path("account/sessions/", include("user_sessions.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
