from __future__ import annotations

from django.urls import include, path

from tests.urls import urlpatterns as suite_urlpatterns

urlpatterns = [path("accounts/", include("allauth.urls")), *suite_urlpatterns]
