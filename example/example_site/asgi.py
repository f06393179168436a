from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")

application = get_asgi_application()

if os.environ.get("EXAMPLE_SERVE_STATIC") == "1":
    # Under uvicorn for the browser tests: the static files as runserver serves them.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
