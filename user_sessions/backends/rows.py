"""Reading a session row by key with a statement compiled once per connection.

Every request reads its session, and building plus compiling the ORM query
for that read costs more than running it against a local database (profiled:
about two thirds of the read). The statement is still the ORM's own, the SQL
it writes for ``filter(session_key=..., expire_date__gt=...)`` on that
backend, together with the converters it would apply to the result; both are
kept per connection object and replayed with fresh parameters. Anything the
replay cannot vouch for (a backend that rewrites the parameters, a custom
model with computed columns) falls back to the ORM query.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import connections
from django.db.models.expressions import Col

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

# Values no real request sends, so that their positions in the compiled
# parameters can be told apart.
_PROBE_KEY = "userssessionsprobe0key"
_PROBE_TIME = datetime.datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=datetime.timezone.utc)

Converter = tuple[int, tuple[Callable[..., Any], ...], Any]


@dataclass(frozen=True)
class Statement:
    sql: str
    key_at: int
    time_at: int
    field_names: tuple[str, ...]
    converters: tuple[Converter, ...]


class RowReader:
    """``model.objects.get(session_key=key, expire_date__gt=now)``, compiled once."""

    def __init__(self) -> None:
        # Connection objects are per thread (and per alias); keying on them
        # ties each statement to the converters of the connection that made
        # it and lets it go when the thread's connection does.
        self._statements: weakref.WeakKeyDictionary[
            BaseDatabaseWrapper, dict[type[Model], Statement | None]
        ] = weakref.WeakKeyDictionary()

    def clear(self) -> None:
        self._statements.clear()

    def get(self, model: type[Model], using: str, key: str, now: datetime.datetime) -> Any:
        """The live row for ``key`` as a model instance, or None."""
        connection = connections[using]
        per_model = self._statements.get(connection)
        if per_model is None:
            per_model = self._statements[connection] = {}
        try:
            statement = per_model[model]
        except KeyError:
            statement = per_model[model] = compile_statement(model, connection)
        if statement is None:
            return (
                model._default_manager.using(using)
                .filter(session_key=key, expire_date__gt=now)
                .first()
            )
        params: list[Any] = [None, None]
        params[statement.key_at] = _prep(model, "session_key", key, connection)
        params[statement.time_at] = _prep(model, "expire_date", now, connection)
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = list(row)
        for index, functions, expression in statement.converters:
            value = values[index]
            for function in functions:
                value = function(value, expression, connection)
            values[index] = value
        return model.from_db(using, statement.field_names, values)


def _prep(model: type[Model], name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
    return model._meta.get_field(name).get_db_prep_value(value, connection)  # type: ignore[union-attr]


def compile_statement(model: type[Model], connection: BaseDatabaseWrapper) -> Statement | None:
    """Compile the read once; None when its parameters cannot be located."""
    query = model._default_manager.filter(
        session_key=_PROBE_KEY, expire_date__gt=_PROBE_TIME
    ).query
    compiler = query.get_compiler(connection=connection)
    sql, compiled_params = compiler.as_sql()
    key = _prep(model, "session_key", _PROBE_KEY, connection)
    when = _prep(model, "expire_date", _PROBE_TIME, connection)
    positions = _positions(compiled_params, key, when)
    if positions is None:
        return None
    columns = [item[0] for item in compiler.select]
    field_names: list[str] = []
    for column in columns:
        if not isinstance(column, Col) or column.target.model is not model:  # type: ignore[attr-defined]
            return None
        field_names.append(column.target.attname)  # type: ignore[attr-defined]
    # Model.from_db() takes a full row positionally, in field order.
    if field_names != [field.attname for field in model._meta.concrete_fields]:
        return None
    converters = tuple(
        (index, tuple(functions), expression)
        for index, (functions, expression) in compiler.get_converters(columns).items()
    )
    return Statement(sql, positions[0], positions[1], tuple(field_names), converters)


def _positions(params: Sequence[Any], key: Any, when: Any) -> tuple[int, int] | None:
    if len(params) != 2:
        return None
    if params[0] == key and params[1] == when:
        return 0, 1
    if params[1] == key and params[0] == when:
        return 1, 0
    return None


reader = RowReader()


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    # Compiled SQL and converters depend on the database settings.
    if setting in ("DATABASES", "USE_TZ", "TIME_ZONE"):
        reader.clear()


setting_changed.connect(_settings_changed, dispatch_uid="user_sessions.rows")
