"""Settings of the example site: a plain Django project plus django-user-sessions.

The lines that matter for the package are marked "user_sessions". Everything
read from ``EXAMPLE_*`` environment variables exists for the browser tests.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import django
from django.utils.log import DEFAULT_LOGGING
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("EXAMPLE_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    # user_sessions: replaces "django.contrib.sessions".
    "user_sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "example_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # user_sessions: replaces "django.contrib.sessions.middleware.SessionMiddleware".
    "user_sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Content Security Policy: the middleware makes a nonce per response and writes
# the header of the pages that set a policy (the strict-CSP pages, see
# example_site/csp.py); the context processor hands the nonce to templates as
# csp_nonce, which {% htmx_script %} reads (the widget finds it either way).
# Django 6 has CSP built in; on Django 5.2 django-csp provides it.
if django.VERSION >= (6, 0):
    MIDDLEWARE.insert(1, "django.middleware.csp.ContentSecurityPolicyMiddleware")
    csp_context_processors = ["django.template.context_processors.csp"]
elif importlib.util.find_spec("csp") is not None:
    MIDDLEWARE.insert(1, "csp.middleware.CSPMiddleware")
    csp_context_processors = ["example_site.csp.nonce"]
else:
    csp_context_processors = []

# user_sessions: or "user_sessions.backends.cached_db".
SESSION_ENGINE = "user_sessions.backends.db"

ROOT_URLCONF = "example_site.urls"
WSGI_APPLICATION = "example_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                *csp_context_processors,
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH") or BASE_DIR / "db.sqlite3",
        "OPTIONS": {
            # Several browsers sign in and poll at once: let writers queue
            # instead of failing with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

if os.environ.get("EXAMPLE_FAST_HASHER") == "1":
    # The browser tests sign in dozens of times; a real hasher would dominate their run time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "account"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("de", _("German")),
    ("nl", _("Dutch")),
    ("fr", _("French")),
    ("ar", _("Arabic")),
    ("he", _("Hebrew")),
    ("fa", _("Persian")),
]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# user_sessions: how often the widget refreshes its list (seconds; 0 = never).
if os.environ.get("EXAMPLE_REFRESH_INTERVAL"):
    USER_SESSIONS_REFRESH_INTERVAL = int(os.environ["EXAMPLE_REFRESH_INTERVAL"])

# user_sessions: live updates through a broker (the widget listens instead of
# polling when served over ASGI, e.g. uvicorn; see docs/howto/push.md).
if os.environ.get("EXAMPLE_PUSH_BROKER"):
    USER_SESSIONS_PUSH = {
        "BROKER": os.environ["EXAMPLE_PUSH_BROKER"],
        "URL": os.environ.get("EXAMPLE_PUSH_URL") or None,
        "CHANNEL": os.environ.get("EXAMPLE_PUSH_CHANNEL", "user_sessions"),
        "MAX_STREAMS": int(os.environ.get("EXAMPLE_PUSH_MAX_STREAMS", "10")),
    }

# user_sessions: mail the owner when their account signs in from a new device,
# with a "This wasn't me" link (see docs/howto/sign-in-alerts.md).
USER_SESSIONS_SIGN_IN_ALERTS = True

# Mail is not sent but written to files next to the database, one directory
# that every server process shares; the demo outbox page (/outbox/) shows it.
# A real site configures a mail backend that sends.
EXAMPLE_OUTBOX_DIR = Path(DATABASES["default"]["NAME"]).parent / "outbox"
if django.VERSION >= (6, 1):
    # Django 6.1 configures mail with MAILERS, and refuses EMAIL_* beside it.
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": str(EXAMPLE_OUTBOX_DIR)},
        }
    }
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = EXAMPLE_OUTBOX_DIR
DEFAULT_FROM_EMAIL = "example-site@example.com"

# user_sessions: ask for the password before signing out other sessions
# ("others": for any session but the one in use).
if os.environ.get("EXAMPLE_REQUIRE_PASSWORD"):
    USER_SESSIONS_REQUIRE_PASSWORD = os.environ["EXAMPLE_REQUIRE_PASSWORD"]
    # runserver is one process, where the local-memory cache counts wrong
    # passwords exactly; a deployment with several workers should heed W009.
    SILENCED_SYSTEM_CHECKS = ["user_sessions.W009"]

# user_sessions: where sessions were signed in from. The example's database
# (written by create_demo_sessions) knows only the made-up places of its demo
# devices; a real site points this at MaxMind's GeoLite2 City database.
# (Where example_site.demo.geoip_path() writes it.)
GEOIP_PATH = os.environ.get("EXAMPLE_GEOIP_PATH") or BASE_DIR / "demo-geoip" / "Demo-City.mmdb"
if not Path(GEOIP_PATH).exists():
    del GEOIP_PATH

if os.environ.get("EXAMPLE_QUIET_SERVER") == "1":
    # The browser tests keep runserver's warnings and errors, not a line per request.
    LOGGING = copy.deepcopy(DEFAULT_LOGGING)
    LOGGING["loggers"]["django.server"]["level"] = "WARNING"
