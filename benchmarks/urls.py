from __future__ import annotations

from django.urls import include, path

from benchmarks import views

urlpatterns = [
    path("read/", views.read),
    path("write/", views.write),
    path("async/read/", views.async_read),
    path("account/sessions/", include("user_sessions.urls")),
]
