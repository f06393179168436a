# Not a migration (the leading underscore keeps Django's loader away): the one
# operation that 0003 and 0005 share.
from __future__ import annotations

from typing import Any

from django.db import models
from django.db.migrations.operations.base import Operation
from django.db.models import NOT_PROVIDED


def without_db_default(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    """The same column as ``field`` but with no database default (not bound to a model)."""
    _name, _path, args, kwargs = field.deconstruct()
    kwargs.pop("db_default", None)
    return field.__class__(*args, **kwargs)


def has_database_default(description: Any) -> bool:
    # MariaDB reports the implicit DEFAULT NULL of a nullable column as 'NULL'.
    return description.default is not None and str(description.default).upper() != "NULL"


class AddMissingDatabaseDefaults(Operation):
    """Give the columns the database defaults the migration state says they have.

    0002-0004 gained their database defaults after some sites had run them;
    those sites' columns have none, so 2.x code still serving cannot insert.
    Columns that have a default already (every fresh install) are left alone,
    so this costs nothing there, not even SQLite's table rebuild.
    """

    reduces_to_sql = True
    reversible = True

    def __init__(self, model_name: str, fields: list[str]) -> None:
        self.model_name = model_name
        self.fields = fields

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {"model_name": self.model_name, "fields": self.fields},
        )

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # the state has the defaults already

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        connection = schema_editor.connection
        if not self.allow_migrate_model(connection.alias, model):
            return
        table = model._meta.db_table
        with connection.cursor() as cursor:
            # migrate always finds the table; sqlmigrate on an empty database
            # does not, and shows what a site without the defaults would run.
            columns = {}
            if table in connection.introspection.table_names(cursor):
                description = connection.introspection.get_table_description(cursor, table)
                columns = {column.name: column for column in description}
        for name in self.fields:
            field = model._meta.get_field(name)
            column = columns.get(field.column)
            if field.db_default is NOT_PROVIDED or (column and has_database_default(column)):
                continue
            bare = without_db_default(field)
            bare.set_attributes_from_name(name)
            bare.model = model
            schema_editor.alter_field(model, bare, field)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        pass  # a default harms nothing, and the state before had it too

    def describe(self) -> str:
        return f"Add the database defaults of {', '.join(self.fields)} where missing"

    @property
    def migration_name_fragment(self) -> str:
        return "database_defaults"
