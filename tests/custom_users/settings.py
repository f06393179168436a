"""The test settings with a custom ``AUTH_USER_MODEL`` (``CUSTOM_USER``: uuid, string, managed)."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

VARIANT = os.environ.get("CUSTOM_USER", "uuid")
AUTH_USER_MODEL = {
    "uuid": "custom_users.UUIDUser",
    "string": "custom_users.StringUser",
    "managed": "custom_users.ManagedUser",
}[VARIANT]

# The admin's log and the test app's session models are left out: both point
# at the user model and add nothing here.
INSTALLED_APPS = [
    *(app for app in INSTALLED_APPS if app not in ("django.contrib.admin", "tests.testapp")),
    "tests.custom_users",
]
ROOT_URLCONF = "tests.custom_users.urls"

# A database of its own per model, so the three runs never share one.
_test = DATABASES["default"].setdefault("TEST", {})
if "NAME" in _test:
    _test["NAME"] = f"{_test['NAME']}_{VARIANT}"
