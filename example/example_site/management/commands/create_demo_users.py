"""Create (or reset) the example's demo users; safe to run again and again."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from example_site.demo import ensure_geoip_database

DEMO_USERNAMES = ("alice", "bob")
DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = f"Create the demo users ({', '.join(DEMO_USERNAMES)}), password {DEMO_PASSWORD!r}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "usernames",
            nargs="*",
            default=DEMO_USERNAMES,
            help="Users to create instead of the default ones (the browser tests give each "
            "test its own).",
        )

    def handle(self, *args: Any, usernames: list[str], verbosity: int, **options: Any) -> None:
        User = get_user_model()
        for username in usernames:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": username.capitalize()}
            )
            if not user.email:
                # Where sign-in alerts go: the demo outbox shows them (see settings).
                user.email = f"{username}@example.com"
                user.save(update_fields=["email"])
            if created or not user.check_password(DEMO_PASSWORD):
                # Setting a password signs the user out everywhere, so an
                # unchanged one is left alone and a second run ends no session.
                user.set_password(DEMO_PASSWORD)
                user.save()
            if verbosity:
                self.stdout.write(f"Demo user {username!r}, password {DEMO_PASSWORD!r}")
        # Before the server starts (scripts/example, scripts/e2e-server), so
        # the settings find it: demo sessions are placed by it.
        ensure_geoip_database()
