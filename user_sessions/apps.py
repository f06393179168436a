from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UserSessionsConfig(AppConfig):
    name = "user_sessions"
    verbose_name = _("User sessions")
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from user_sessions import checks, events, push, signals

        checks.register()
        signals.connect()
        if push.enabled():
            events.add_publisher(push.PUBLISHER, push.publish)
