"""Model instances from the columns of one hand-written statement, for the hottest requests.

Compiling an ORM query costs more CPU than running a simple one ("next ticket" over HTTP spent
most of its time compiling two). These statements are built once per process and, on PostgreSQL,
bound on the server, so psycopg prepares them once per connection.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def columns(model: type[Model], alias: str) -> str:
    """The model's concrete columns under a table alias, in the order `instances` reads them."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


@functools.cache
def _loader(model: type[Model]) -> tuple[list[str], list[tuple[int, Any]]]:
    """Attribute names in column order, and the fields whose database values need converting."""
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]


def _instance(model: type[Model], values: Sequence[Any]) -> Any:
    """A model instance from its columns in concrete-field order (None when a LEFT JOIN found none)."""
    if values[0] is None:
        return None
    names, converted = _loader(model)
    values = list(values)
    for i, field in converted:
        values[i] = field.from_db_value(values[i], None, connection)
    return model.from_db(connection.alias, names, values)


def instances(row: Sequence[Any], models: Sequence[type[Model]]) -> list[Any]:
    """One instance per model from consecutive runs of `columns(model, …)` in the row."""
    out, start = [], 0
    for model in models:
        width = len(model._meta.concrete_fields)
        out.append(_instance(model, row[start:start + width]))
        start += width
    return out


def prepared_cursor() -> Any:
    """A Django cursor; on PostgreSQL one binding parameters on the server and preparing each
    statement the first time a connection runs it: PostgreSQL then plans it once, not on every call.

    Django opens connections with psycopg's preparing off (prepare_threshold None, for
    transaction-mode poolers), and psycopg then ignores even prepare=True: the claim was planned
    on every call, ~1 ms of PostgreSQL CPU (docs/benchmarks.md). So the connection's threshold
    becomes "never on its own" and these cursors ask for preparing; other server-binding cursors
    on the connection (the parity report's) still never prepare. A deployment behind such a
    pooler sets OPTIONS["prepare_threshold"] and that choice is kept."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    raw_connection = connection.connection
    prepare = "prepare_threshold" not in connection.settings_dict["OPTIONS"]
    if prepare and raw_connection.prepare_threshold is None:
        raw_connection.prepare_threshold = _NEVER_ON_ITS_OWN
    with connection.wrap_database_errors:
        raw = (_preparing_cursor() if prepare else psycopg.Cursor)(raw_connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


#: a psycopg prepare_threshold no statement reaches: only an explicit prepare=True prepares
_NEVER_ON_ITS_OWN = 2**31 - 1


@functools.cache
def _preparing_cursor() -> type:
    """psycopg's Cursor, asking to prepare every statement it runs."""
    import psycopg

    class PreparingCursor(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=True if prepare is None else prepare, **kwargs)

    return PreparingCursor
