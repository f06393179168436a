# NOT NULL and unique are safe while 2.x code still inserts: its rows get
# created_at and a handle from the database defaults. A row still without them
# (0003 filled every row there was) gets them first.
#
# On PostgreSQL, Django's statements for these operations build three indexes
# and scan the table for NULLs while holding its strongest lock, which stops
# every read of a session until they are done (3 s for 100,000 rows on a busy
# 2-core machine). The statements below reach the same schema holding that lock
# only for catalogue changes: indexes built CONCURRENTLY, and NOT NULL proven
# by a CHECK constraint validated first, under a lock that lets reads and
# writes go on (PostgreSQL 12+ then skips the scan). That needs a migration
# outside a transaction; an interrupted run can simply be run again. MariaDB
# and MySQL build these online anyway, SQLite rebuilds the table either way.
from __future__ import annotations

import django.utils.timezone
from django.db import migrations, models

import user_sessions.models

TABLE = '"user_sessions_session"'
# The names Django gives them, so that later migrations find them.
UNIQUE = '"user_sessions_session_handle_051f1e8b_uniq"'
LIKE = '"user_sessions_session_handle_051f1e8b_like"'
RECENT = '"user_sessions_user_recent"'
FILLED = '"user_sessions_session_filled"'  # only while this runs


def postgresql_statements(handle_default):
    return [
        f'UPDATE {TABLE} SET "handle" = COALESCE("handle", {handle_default}),'
        ' "created_at" = COALESCE("created_at", "last_activity")'
        ' WHERE "handle" IS NULL OR "created_at" IS NULL',
        f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {FILLED}",
        f'ALTER TABLE {TABLE} ADD CONSTRAINT {FILLED} CHECK ("handle" IS NOT NULL'
        ' AND "created_at" IS NOT NULL) NOT VALID',
        f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {FILLED}",
        f'ALTER TABLE {TABLE} ALTER COLUMN "handle" SET NOT NULL,'
        ' ALTER COLUMN "created_at" SET NOT NULL',
        f"ALTER TABLE {TABLE} DROP CONSTRAINT {FILLED}",
        f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {UNIQUE}",
        f"DROP INDEX CONCURRENTLY IF EXISTS {UNIQUE}",
        f'CREATE UNIQUE INDEX CONCURRENTLY {UNIQUE} ON {TABLE} ("handle")',
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {UNIQUE} UNIQUE USING INDEX {UNIQUE}",
        f"DROP INDEX CONCURRENTLY IF EXISTS {LIKE}",
        f'CREATE INDEX CONCURRENTLY {LIKE} ON {TABLE} ("handle" varchar_pattern_ops)',
        f"DROP INDEX CONCURRENTLY IF EXISTS {RECENT}",
        f'CREATE INDEX CONCURRENTLY {RECENT} ON {TABLE} ("user_id", "last_activity" DESC)',
    ]


class OnlineOnPostgreSQL(migrations.SeparateDatabaseAndState):
    """``operations`` everywhere, except forwards on PostgreSQL: the statements above."""

    def __init__(self, operations):
        super().__init__(database_operations=operations, state_operations=operations)

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.database_operations], {})

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, "session")
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        handle_default, _params = schema_editor.db_default_sql(model._meta.get_field("handle"))
        for statement in postgresql_statements(handle_default):
            schema_editor.execute(statement, params=None)
        return None

    def describe(self):
        return "created_at and handle NOT NULL, handle unique, index user_sessions_user_recent"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("user_sessions", "0003_fill_new_columns")]

    operations = [
        OnlineOnPostgreSQL(
            [
                migrations.AlterField(
                    model_name="session",
                    name="created_at",
                    field=models.DateTimeField(
                        db_default=user_sessions.models.UtcNow(),
                        default=django.utils.timezone.now,
                        verbose_name="signed in",
                    ),
                ),
                migrations.AlterField(
                    model_name="session",
                    name="handle",
                    field=models.CharField(
                        db_default=user_sessions.models.RandomHandle(),
                        default=user_sessions.models.new_handle,
                        editable=False,
                        max_length=32,
                        unique=True,
                        verbose_name="handle",
                    ),
                ),
                migrations.AddIndex(
                    model_name="session",
                    index=models.Index(
                        fields=["user", "-last_activity"], name="user_sessions_user_recent"
                    ),
                ),
            ]
        ),
    ]
