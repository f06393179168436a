"""The suite's PostgreSQL settings through PgBouncer in transaction pooling mode.

``python -m tests.scaleout`` points ``PGPORT`` at PgBouncer and sets
``SCALEOUT_SERVER_SIDE_BINDING`` (1: psycopg's server-side binding).
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

_default = DATABASES["default"]
_default["TEST"] = {"NAME": os.environ.get("SCALEOUT_TEST_DATABASE", "test_user_sessions_bouncer")}
if os.environ.get("SCALEOUT_SERVER_SIDE_BINDING") == "1":
    _default["OPTIONS"] = {"server_side_binding": True}
if os.environ.get("SCALEOUT_SERVER_SIDE_CURSORS") != "1":
    # Django's requirement for transaction pooling: a server-side cursor
    # (QuerySet.iterator()) outlives the transaction PgBouncer lends a
    # server connection for.
    _default["DISABLE_SERVER_SIDE_CURSORS"] = True
