"""Settings for the scale-out tests (``python -m tests.scaleout`` sets the ports).

The suite's settings, on servers the harness started: ``default`` is a
PostgreSQL primary and ``replica`` its streaming replica; the cache is a Redis
primary and its replica, configured as Django documents for several servers
(the first ``LOCATION`` takes the writes, the others the reads).
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

_primary = os.environ.get("SCALEOUT_PG_PRIMARY_PORT", "5432")
_database = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "postgres",
    "USER": "postgres",
    "HOST": "127.0.0.1",
    "PORT": _primary,
    "TEST": {"NAME": "test_user_sessions_scaleout" + os.environ.get("TEST_DB_SUFFIX", "")},
}
DATABASES = {
    "default": _database,
    # Its NAME is set to the test database's once that exists (conftest.py);
    # no test database is ever created on it: a standby is read-only.
    "replica": {**_database, "PORT": os.environ.get("SCALEOUT_PG_REPLICA_PORT", _primary)},
}

# The primary through PgBouncer (transaction pooling), as each variant a
# site may run: Django's default client-side binding; psycopg's server-side
# binding; server-side binding with prepared statements. Each sets Django's
# DISABLE_SERVER_SIDE_CURSORS, required for transaction pooling. NAMEs are
# set with the replica's.
_bouncer = os.environ.get("SCALEOUT_PGBOUNCER_PORT")
if _bouncer:
    _pooled = {**_database, "PORT": _bouncer, "DISABLE_SERVER_SIDE_CURSORS": True}
    DATABASES |= {
        "pooled": _pooled,
        "pooled_bound": {**_pooled, "OPTIONS": {"server_side_binding": True}},
        "pooled_prepared": {
            **_pooled,
            "OPTIONS": {"server_side_binding": True, "prepare_threshold": 0},
        },
    }

_redis = [
    f"redis://127.0.0.1:{port}/0"
    for port in (
        os.environ.get("SCALEOUT_REDIS_PRIMARY_PORT", "6379"),
        os.environ.get("SCALEOUT_REDIS_REPLICA_PORT", "6379"),
    )
]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _redis,
        "KEY_PREFIX": "user-sessions-scaleout",
    }
}
