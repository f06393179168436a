from __future__ import annotations

from django.urls import path

from tests.asgi_site import views
from tests.urls import urlpatterns as test_urlpatterns

urlpatterns = [
    path("asgi/wrappers/", views.wrappers),
    *test_urlpatterns,
]
