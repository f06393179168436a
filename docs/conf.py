"""Sphinx configuration: build with ``scripts/docs``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# autodoc imports models and views, so Django must be set up first; the test
# settings are the package's fullest configuration.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()

from user_sessions import __version__  # noqa: E402

project = "django-user-sessions"
author = "django-user-sessions maintainers"
copyright = "django-user-sessions maintainers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "furo"
html_title = f"django-user-sessions {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"exclude-members": "DoesNotExist, MultipleObjectsReturned"}

# Warnings are errors (scripts/docs passes -W -n). Names from Django, the
# standard library and other packages are not documented here; with no
# network at build time there is no intersphinx inventory to resolve them,
# so only they are exempt from the nitpicky check.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(django|django_htmx|collections|typing|datetime|geoip2)(\..*)?"),
    (r"py:.*", r"(Any|HttpRequest|HttpResponse|HttpResponseBase|Callable|SessionBase)"),
    (r"py:.*", r"(Location|DeviceList|ConfirmPasswordForm|AbstractBaseUser|CommandParser)"),
    # Described by hand, field by field, in templates.md ("The widget object").
    (r"py:class", r"user_sessions\.widget\.DeviceList"),
    (r"py:class", r"(str|int|tuple|dict|list|None|bool|Literal\[.*\]|.*IPPrivacy)"),
]


def setup(app: Any) -> None:
    # Django's own docs mark up settings this way; :setting:`NAME` links here.
    app.add_object_type("setting", "setting", indextemplate="pair: %s; setting")
    app.add_object_type("check", "check", indextemplate="pair: %s; system check")
    app.add_object_type("command", "command", indextemplate="pair: %s; management command")
    app.add_object_type("urlname", "urlname", indextemplate="pair: %s; URL name")
