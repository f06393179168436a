from __future__ import annotations

from django.urls import path
from example_site.urls import urlpatterns as example_urlpatterns

from tests.load import views

urlpatterns = [
    path("load/counter/", views.counter),
    *example_urlpatterns,
]
