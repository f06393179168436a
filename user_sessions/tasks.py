"""The sign-in alert as a Django 6 task (``django.tasks``), for sites with a task backend.

Imported only when ``TASKS`` is configured (see ``alerts.schedule``), so a
Django 5.2 site or a misconfigured backend never breaks the app's import.
A worker finds the task by this module path.
"""

from __future__ import annotations

from typing import Any

from django.tasks import task  # type: ignore[import-not-found,unused-ignore]

from user_sessions import alerts


@task  # type: ignore[misc,unused-ignore]
def send_sign_in_alert_task(payload: dict[str, Any]) -> None:
    """Send one alert (``SignInAlert.as_dict()``); failures are logged, never retried."""
    alerts.deliver(payload)
