from __future__ import annotations

from django.contrib.auth.views import LoginView
from django.urls import include, path

from benchmarks import views

urlpatterns = [
    path("read/", views.read),
    path("write/", views.write),
    path("async/read/", views.async_read),
    # For benchmarks/security.py: a sign-in as a site does it (signals, cap, alert).
    path("login/", LoginView.as_view()),
    path("account/sessions/", include("user_sessions.urls")),
]
