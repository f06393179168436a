"""``clearsessions`` that reports what it deleted and works with any session engine.

It replaces ``django.contrib.sessions``' command of the same name (which need
not be installed alongside this app), and drops records of ended sessions
older than ``USER_SESSIONS_HISTORY_DAYS`` (``user_sessions.history``). This
package's engines delete in bounded batches, so a table with millions of
expired rows is never read into memory or locked by one long statement.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext, ngettext

from user_sessions import history


class Command(BaseCommand):
    help = (
        "Delete expired sessions, and records of ended sessions older than "
        "USER_SESSIONS_HISTORY_DAYS. Run it regularly, for example from cron."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        engine = import_module(settings.SESSION_ENGINE)
        try:
            deleted = engine.SessionStore.clear_expired()
        except NotImplementedError:
            # Django's words: scripts and monitoring may look for them.
            raise CommandError(
                f"Session engine '{settings.SESSION_ENGINE}' doesn't support clearing "
                "expired sessions."
            ) from None
        pruned = history.prune()
        if options["verbosity"] < 1:
            return
        # Other engines' clear_expired() return nothing (a cache expires its
        # own entries), so only ours can say how many went.
        if isinstance(deleted, int):
            message = ngettext(
                "Deleted %(count)d expired session.",
                "Deleted %(count)d expired sessions.",
                deleted,
            ) % {"count": deleted}
        else:
            message = gettext("Expired sessions cleared.")
        self.stdout.write(message)
        if pruned:
            self.stdout.write(
                ngettext(
                    "Deleted %(count)d record of an ended session.",
                    "Deleted %(count)d records of ended sessions.",
                    pruned,
                )
                % {"count": pruned}
            )
