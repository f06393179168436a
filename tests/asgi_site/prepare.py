"""Migrate the site's database and add the user the test signs in as.

Run as ``python -m tests.asgi_site.prepare USERNAME PASSWORD`` with the
site's settings (``DJANGO_SETTINGS_MODULE=tests.asgi_site.settings``).
"""

from __future__ import annotations

import sys

import django


def main(username: str, password: str) -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    get_user_model().objects.create_user(username=username, password=password)


if __name__ == "__main__":
    main(*sys.argv[1:3])
