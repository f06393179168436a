"""The store's two per-request statements, compiled once per database.

Every request reads its session and many save it, and building and compiling
the ORM query is a good part of either: on the benchmark machine (PostgreSQL,
2 cores) an ORM UPDATE of the session took 150-200 µs longer than the same
statement replayed, and replaying the read made a whole signed-in request
about 12 % faster (benchmarks/, README "Performance").
The statements are still the ORM's own: the query is built once with a
``Slot`` where each value goes, compiled for the connection at hand (so any
backend's dialect and quoting apply), and kept with the columns whose values
the ORM converts on the way out. Each call fills the slots with values prepared by the
same field methods the ORM uses (``get_db_prep_value`` for lookups,
``get_db_prep_save`` for updates).

Statements are kept per database alias and hold nothing that refers to a
connection: under ASGI Django gives every request a new connection wrapper,
and with ``CONN_MAX_AGE`` a wrapper kept alive keeps its database connection
open (a cache per wrapper once made MariaDB refuse clients after ~150
requests). So the converters, bound to a connection, are looked up from the
connection at hand on each read, as the ORM does for every query (on
PostgreSQL no column of the session has one). A statement that does not
compile to the expected shape (a custom model with computed columns, an
unusual backend) is never used: the ORM query runs instead.

The read can carry the session's owner along (``select_related("user")``, a
LEFT JOIN): ``user_sessions.auth`` then gives the request its user without a
second query. A user model whose row does not compile to one plain table (a
multi-table child, computed columns) gets the read without the owner.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import connections
from django.db.models import Expression, Field, Model
from django.db.models.expressions import Col
from django.db.models.sql import UpdateQuery

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler


class Slot(Expression):
    """One value supplied per call: compiles to a single placeholder."""

    def __init__(self, name: str, field: Field[Any, Any], *, saving: bool) -> None:
        super().__init__(output_field=field)
        self.name = name
        self.target = field
        self.saving = saving

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        # The slot itself stands in the parameters, marking its position.
        return "%s", (self,)

    def prepare(self, value: Any, connection: BaseDatabaseWrapper) -> Any:
        if self.saving:
            return self.target.get_db_prep_save(value, connection)
        return self.target.get_db_prep_value(value, connection)

    def __repr__(self) -> str:
        return f"Slot({self.name})"


@dataclass(frozen=True)
class Statement:
    """SQL with a slot per value: the same for every connection to one alias."""

    sql: str
    slots: tuple[Slot, ...]
    # For a SELECT: the model fields in column order, and the position and
    # column of each value the ORM converts on the way out.
    field_names: tuple[str, ...] = ()
    converted: tuple[tuple[int, Col], ...] = ()
    # For a read joined with the owner: the owner's fields, after the session's.
    owner_field_names: tuple[str, ...] = ()

    def params(self, values: dict[str, Any], connection: BaseDatabaseWrapper) -> list[Any]:
        return [slot.prepare(values[slot.name], connection) for slot in self.slots]

    def convert(self, row: Iterable[Any], connection: BaseDatabaseWrapper) -> list[Any]:
        """The row's values as the ORM would return them (``SQLCompiler.apply_converters``)."""
        values = list(row)
        for index, column in self.converted:
            value = values[index]
            # What SQLCompiler.get_converters() finds for the column.
            functions = connection.ops.get_db_converters(column) + column.get_db_converters(
                connection
            )
            for function in functions:
                value = function(value, column, connection)
            values[index] = value
        return values


def _slots(params: Iterable[Any]) -> tuple[Slot, ...] | None:
    """The compiled parameters, if every one of them is a slot."""
    slots = tuple(params)
    if not all(isinstance(param, Slot) for param in slots):
        return None
    return slots


def _slot(model: type[Model], name: str, *, saving: bool = False) -> Slot:
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    return Slot(name, field, saving=saving)  # type: ignore[arg-type]


def _field_names(columns: Iterable[Any], model: type[Model]) -> tuple[str, ...] | None:
    """The columns' field names if they are exactly ``model``'s own, in field order."""
    names: list[str] = []
    for column in columns:
        if not isinstance(column, Col) or column.target.model is not model:
            return None
        names.append(column.target.attname)
    # Model.from_db() takes a full row positionally, in field order.
    if names != [field.attname for field in model._meta.concrete_fields]:
        return None
    return tuple(names)


def compile_read(
    model: type[Model], connection: BaseDatabaseWrapper, *, with_owner: bool = False
) -> Statement | None:
    """``filter(session_key=..., expire_date__gt=...)`` with every model column.

    ``with_owner``: and every column of the owner (``select_related("user")``).
    """
    queryset = model._default_manager.filter(
        session_key=_slot(model, "session_key"), expire_date__gt=_slot(model, "expire_date")
    )
    if with_owner:
        queryset = queryset.select_related("user")
    compiler = queryset.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    slots = _slots(params)
    if slots is None or len(slots) != 2:
        return None
    columns = [item[0] for item in compiler.select]
    session_count = len(model._meta.concrete_fields)
    field_names = _field_names(columns[:session_count], model)
    if field_names is None:
        return None
    owner_field_names: tuple[str, ...] = ()
    if with_owner:
        owner_model = model._meta.get_field("user").related_model
        if not isinstance(owner_model, type):
            return None
        owner_names = _field_names(columns[session_count:], owner_model)
        if owner_names is None:
            return None
        owner_field_names = owner_names
    elif len(columns) != session_count:
        return None
    # Which columns need converting depends on the backend and settings only;
    # the converters themselves are bound to this connection, so not kept.
    converted = tuple(
        (index, column) for index, (_functions, column) in compiler.get_converters(columns).items()
    )
    return Statement(sql, slots, field_names, converted, owner_field_names)


def compile_update(
    model: type[Model], connection: BaseDatabaseWrapper, columns: tuple[str, ...]
) -> Statement | None:
    """``filter(pk=...).update(**columns)``."""
    query = model._base_manager.filter(pk=_slot(model, "pk")).query.chain(UpdateQuery)
    query.add_update_values({name: _slot(model, name, saving=True) for name in columns})
    sql, params = query.get_compiler(connection=connection).as_sql()
    slots = _slots(params)
    if slots is None or len(slots) != len(columns) + 1:
        return None
    return Statement(sql, slots)


class Statements:
    """Compiled statements by kind, database alias and model (see the module docstring)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[Any, ...], Statement | None] = {}

    def clear(self) -> None:
        self._kept.clear()

    def _statement(
        self, key: tuple[Any, ...], make: Callable[[], Statement | None]
    ) -> Statement | None:
        try:
            return self._kept[key]
        except KeyError:
            # Threads racing here compile equal statements: either may be kept.
            statement = self._kept[key] = make()
            return statement

    def read(self, model: type[Model], using: str, key: str, now: datetime.datetime) -> Any:
        """``model.objects.get(session_key=key, expire_date__gt=now)``, or None."""
        connection = connections[using]
        statement = self._statement(("read", using, model), lambda: compile_read(model, connection))
        if statement is None:
            return (
                model._default_manager.using(using)
                .filter(session_key=key, expire_date__gt=now)
                .first()
            )
        params = statement.params({"session_key": key, "expire_date": now}, connection)
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        return model.from_db(using, statement.field_names, statement.convert(row, connection))

    def read_with_owner(
        self, model: type[Model], using: str, key: str, now: datetime.datetime
    ) -> tuple[Any, Model | None]:
        """The session as ``read()`` gives it and its owner's row from the same SELECT.

        The owner is None for a session without one, and when the owner's row
        cannot be read this way (then the plain read runs).
        """
        connection = connections[using]
        statement = self._statement(
            ("read_with_owner", using, model),
            lambda: compile_read(model, connection, with_owner=True),
        )
        if statement is None:
            return self.read(model, using, key, now), None
        params = statement.params({"session_key": key, "expire_date": now}, connection)
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None, None
        values = statement.convert(row, connection)
        count = len(statement.field_names)
        obj = model.from_db(using, statement.field_names, values[:count])
        owner_values = values[count:]
        owner_model = model._meta.get_field("user").related_model
        owner_pk_index = statement.owner_field_names.index(owner_model._meta.pk.attname)  # type: ignore[union-attr]
        if owner_values[owner_pk_index] is None:
            return obj, None
        owner = owner_model.from_db(using, statement.owner_field_names, owner_values)  # type: ignore[union-attr]
        return obj, owner

    def update(self, model: type[Model], using: str, pk: Any, values: dict[str, Any]) -> int:
        """``filter(pk=pk).update(**values)``: the number of rows matched."""
        connection = connections[using]
        columns = tuple(values)
        statement = self._statement(
            ("update", using, model, columns),
            lambda: compile_update(model, connection, columns),
        )
        if statement is None:
            return int(model._base_manager.using(using).filter(pk=pk).update(**values))
        params = statement.params({**values, "pk": pk}, connection)
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            return int(cursor.rowcount)


statements = Statements()


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    # Compiled SQL and converters depend on the database settings.
    if setting in ("DATABASES", "USE_TZ", "TIME_ZONE"):
        statements.clear()


setting_changed.connect(_settings_changed, dispatch_uid="user_sessions.statements")
