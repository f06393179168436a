"""Give a demo user sessions on made-up devices and places, and the GeoIP database that places them.

Safe to run again: earlier demo sessions (handles starting with "demo-") are
replaced, real ones are left alone.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import RequestFactory
from django.utils import timezone

from example_site import demo
from user_sessions.backends.db import SessionStore
from user_sessions.client import get_client_hints
from user_sessions.models import get_session_model


class Command(BaseCommand):
    help = "Add clearly marked demo sessions (several devices and places) for a demo user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", default="alice")

    def handle(self, *args: Any, username: str, verbosity: int, **options: Any) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}: run create_demo_users first.") from None
        self._write_geoip(verbosity)
        model = get_session_model()
        model.objects.filter(user=user, handle__startswith=demo.HANDLE_PREFIX).delete()
        now = timezone.now()
        for device in demo.DEVICES:
            # What the sign-in would have stored: the data of a signed-in session.
            store = SessionStore(user_agent=device.user_agent, ip=device.ip)
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            # The hints go through the package's own reading of request headers.
            request = RequestFactory().get("/", **device.hints)
            model.objects.filter(session_key=store.session_key).update(
                handle=demo.HANDLE_PREFIX + secrets.token_urlsafe(8),
                client_hints=get_client_hints(request),
                created_at=now - device.signed_in_ago,
                last_activity=now - device.active_ago,
            )
        if verbosity:
            self.stdout.write(f"{len(demo.DEVICES)} demo sessions for {username!r}")

    def _write_geoip(self, verbosity: int) -> None:
        try:
            path = demo.write_geoip_database(demo.geoip_path())
        except ImportError:
            self.stderr.write(
                "mmdb-writer is not installed: the demo sessions show no places "
                "(pip install mmdb-writer, then run this again)."
            )
            return
        if verbosity > 1:
            self.stdout.write(f"Demo GeoIP database: {path}")
