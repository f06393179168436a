from __future__ import annotations

from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("read/", views.read),
    path("async/read/", views.async_read),
]
