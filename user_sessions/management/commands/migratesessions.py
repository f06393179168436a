"""``migratesessions``: copy ``django.contrib.sessions`` rows into this app's table.

Run it once when switching ``SESSION_ENGINE`` to this package, so the switch
signs nobody out. The old table is read with plain SQL, a batch at a time, so
``django.contrib.sessions`` need not be installed and a big table never sits
in memory. Running it again imports only what is new.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.translation import gettext

from user_sessions.backends.db import SessionStore
from user_sessions.models import Session

SOURCE_TABLE = "django_session"

# What django.contrib.auth keeps in a session to know who is signed in.
AUTH_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)

OldRow = tuple[str, str, datetime.datetime]


@dataclass
class Tally:
    imported: int = 0
    ownerless: int = 0  # imported, but the account they were signed in to is gone
    present: int = 0
    expired: int = 0
    undecodable: int = 0


class Command(BaseCommand):
    help = (
        "Copy the sessions of django.contrib.sessions (table django_session) into "
        "django-user-sessions, so switching SESSION_ENGINE signs nobody out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="The database holding django_session and this app's table.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="How many rows to read and write at a time (default: 1000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using: str = options["database"]
        batch_size: int = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        connection = connections[using]
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        if SOURCE_TABLE not in tables:
            raise CommandError(
                f"There is no table {SOURCE_TABLE!r} in database {using!r}, so there "
                "are no django.contrib.sessions sessions to import."
            )

        now = timezone.now()
        tally = Tally(expired=count_expired(connection, now))
        for rows in read_unexpired(connection, now, batch_size):
            with transaction.atomic(using=using):
                import_rows(rows, using, now, tally)

        if options["verbosity"] >= 1:
            self.stdout.write(summary(tally))


def _quoted(connection: BaseDatabaseWrapper) -> dict[str, str]:
    """The old table's quoted names: the only text (with an int) formatted into SQL here.

    Every value goes as a query parameter, hence the ``noqa: S608`` below.
    """
    quote = connection.ops.quote_name
    return {
        "table": quote(SOURCE_TABLE),
        "key": quote("session_key"),
        "data": quote("session_data"),
        "expiry": quote("expire_date"),
    }


def count_expired(connection: BaseDatabaseWrapper, now: datetime.datetime) -> int:
    names = _quoted(connection)
    sql = "SELECT COUNT(*) FROM {table} WHERE {expiry} <= %s".format(**names)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(now)])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def read_unexpired(
    connection: BaseDatabaseWrapper, now: datetime.datetime, batch_size: int
) -> Iterator[list[OldRow]]:
    """Yield the unexpired rows a batch at a time, in session key order.

    Each batch starts after the last key of the one before (instead of an
    OFFSET), so every read is one short index range scan however far along.
    """
    sql = (  # noqa: S608
        "SELECT {key}, {data}, {expiry} FROM {table} "
        "WHERE {expiry} > %s AND {key} > %s ORDER BY {key} LIMIT {limit}"
    ).format(**_quoted(connection), limit=int(batch_size))
    to_datetime = _datetime_converter(connection)
    after = ""
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [connection.ops.adapt_datetimefield_value(now), after])
            rows = cursor.fetchall()
        if not rows:
            return
        yield [(key, data, to_datetime(expiry)) for key, data, expiry in rows]
        if len(rows) < batch_size:
            return
        after = rows[-1][0]


def _datetime_converter(connection: BaseDatabaseWrapper) -> Callable[[Any], datetime.datetime]:
    # Raw SQL returns what the driver returns: a string on SQLite, a naive UTC
    # datetime on MySQL. The backend's own converters make it what the ORM
    # would have returned for a DateTimeField.
    expression = models.Value(None, output_field=models.DateTimeField())
    converters = connection.ops.get_db_converters(expression)

    def convert(value: Any) -> datetime.datetime:
        for converter in converters:
            value = converter(value, expression, connection)
        return value  # type: ignore[no-any-return]

    return convert


def import_rows(rows: list[OldRow], using: str, now: datetime.datetime, tally: Tally) -> None:
    present = set(
        Session.objects.using(using)
        .filter(session_key__in=[key for key, _data, _expiry in rows])
        .values_list("session_key", flat=True)
    )
    store = SessionStore()
    decoded: list[tuple[str, str, datetime.datetime, dict[str, Any]]] = []
    for key, data, expire_date in rows:
        if key in present:
            tally.present += 1
            continue
        # decode() answers {} for data it cannot read (bad signature, another
        # SECRET_KEY, broken pickle) and for an empty session alike; neither
        # carries anything worth keeping.
        session = store.decode(data) if data else {}
        if not session:
            tally.undecodable += 1
            continue
        decoded.append((key, data, expire_date, session))

    owner_ids = {store._owner_id(session) for *_row, session in decoded} - {None}
    existing_owners = set(
        get_user_model()
        ._default_manager.using(using)
        .filter(pk__in=owner_ids)
        .values_list("pk", flat=True)
    )
    new_rows = []
    for key, data, expire_date, session in decoded:
        owner_id = store._owner_id(session)
        if owner_id is not None and owner_id not in existing_owners:
            # The account was deleted. Keep the rest of the session, signed
            # out: a row whose data names a missing user could never be saved
            # again (the owner column would point nowhere).
            data = store.encode({k: v for k, v in session.items() if k not in AUTH_KEYS})
            owner_id = None
            tally.ownerless += 1
        new_rows.append(
            Session(
                session_key=key,
                session_data=data,
                expire_date=expire_date,
                user_id=owner_id,
                created_at=now,
                last_activity=now,
                ip=None,
                user_agent=None,
            )
        )
    Session.objects.using(using).bulk_create(new_rows)
    tally.imported += len(new_rows)


def summary(tally: Tally) -> str:
    # One "label: number" line each: no sentence to assemble, no plural
    # form to choose.
    lines = [gettext("Imported: %(count)d") % {"count": tally.imported}]
    if tally.ownerless:
        lines.append(
            gettext("Of those, signed out because their account no longer exists: %(count)d")
            % {"count": tally.ownerless}
        )
    lines += [
        gettext("Already present: %(count)d") % {"count": tally.present},
        gettext("Expired, skipped: %(count)d") % {"count": tally.expired},
        gettext("Undecodable, skipped: %(count)d") % {"count": tally.undecodable},
    ]
    return "\n".join(lines)
