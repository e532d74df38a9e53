"""INSERTs for the apply's hot path, without the ORM compiling the same statement for every row.

`Model.save()` and `bulk_create()` build their SQL anew on every call (a fifth of the worker's
CPU per applied event, py-spy on bench/apply_cpu.py), and psycopg's client-side binding then
quotes every parameter in Python, lists and JSON the slowest (another fifth). Here the statement
is built once per model, and on PostgreSQL the rows travel as one JSON parameter that the server
spreads over the table's own column types (`json_populate_recordset`), so the worker serializes
them with one `json.dumps`. Only for plain models: no signals are sent (the project registers
none); fields' `pre_save` still runs (auto_now, auto_now_add); a value JSON cannot carry, or a
database that cannot return ids from an INSERT, goes the ordinary way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field, Model


@cache
def _fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in model._meta.local_concrete_fields if f is not model._meta.auto_field and not f.generated)


@cache
def _sql(model: type[Model]) -> str:
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in _fields(model))
    # WITH ORDINALITY … ORDER BY: the ids come back in the order of the rows given
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json) "
        f"WITH ORDINALITY AS r ORDER BY r.ordinality RETURNING {quote(model._meta.pk.column)}"
    )


def _plain(value: object) -> str:
    """What json.dumps cannot write itself, in PostgreSQL's input syntax."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not sent as JSON")


def rows_insert(objs: Sequence[Model], *, stamp: bool = True) -> None:
    """INSERT `objs` (all of one model, ids unset) in one statement and give them their ids.

    `stamp=False` keeps the values the objects hold for auto_now/auto_now_add fields (rows
    collected earlier that keep the time they were made).
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql" or not connection.features.can_return_columns_from_insert:
        model._default_manager.bulk_create(objs)
        return
    fields = _fields(model)
    rows: list[dict[str, Any]] = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="rows_insert")
        rows.append({
            f.column: f.get_prep_value(f.pre_save(obj, True) if stamp else getattr(obj, f.attname)) for f in fields
        })
    try:
        payload = json.dumps(rows, default=_plain, allow_nan=False)
    except (TypeError, ValueError):
        model._default_manager.bulk_create(objs)
        return
    with connection.cursor() as cursor:
        cursor.execute(_sql(model), [payload])
        ids = cursor.fetchall()
    for obj, (pk,) in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
