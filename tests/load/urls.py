from __future__ import annotations

from django.urls import path
from example_site.urls import urlpatterns as example_urlpatterns

from tests.asgi_site.views import wrappers
from tests.load import views

urlpatterns = [
    path("load/counter/", views.counter),
    path("load/wrappers/", wrappers),
    *example_urlpatterns,
]
