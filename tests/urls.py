from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("read/", views.read),
    path("write/", views.write),
    path("untouched/", views.untouched),
    path("fail/", views.fail),
    path("revoked/read/", views.revoked_then_read),
    path("revoked/write/", views.revoked_then_write),
    path("async/read/", views.async_read),
    path("async/write/", views.async_write),
    path("cycle/", views.cycle),
    path("password/change/", auth_views.PasswordChangeView.as_view(success_url="/read/")),
    path("password/set-only/", views.set_password_only),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url="/read/"),
        name="password_reset_confirm",
    ),
    path("account/sessions/", include("user_sessions.urls")),
]
