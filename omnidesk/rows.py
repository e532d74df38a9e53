"""Hand-written statements for the hottest paths, where compiling an ORM query costs more CPU than running it.

Reading ("next ticket", the API token): a statement built once per process whose row is turned
into model instances (`columns`, `instances`), sent through `prepared_cursor` so PostgreSQL plans
it once per connection ("next ticket" over HTTP spent most of its time compiling two queries).

Every statement built here goes through `prepared_cursor`, the writes too: PostgreSQL parsing and
planning them on every call was a third of its CPU per applied event (bench/apply_cpu.py: 1.54-1.58
-> 1.06-1.11 ms).

Writing (the apply): `Model.save()` and `bulk_create()` build their SQL anew on every call (a fifth
of the worker's CPU per applied event, py-spy on bench/apply_cpu.py), and psycopg's client-side
binding then quotes every parameter in Python, lists and JSON the slowest (another fifth).
`rows_insert` builds the statement once per model, and on PostgreSQL the rows travel as one JSON
parameter that the server spreads over the table's own column types (`json_populate_recordset`),
so the worker serializes them with one `json.dumps`. Only for plain models: no signals are sent
(the project registers none); fields' `pre_save` still runs (auto_now, auto_now_add); a value JSON
cannot carry, or a database that cannot return ids from an INSERT, goes the ordinary way.

Within an apply batch (`rows_deferred`) those INSERTs and UPDATEs are held back and written one
statement per table just before the next other statement: the new-ticket path's five INSERTs per
item (customer, identities, ticket, thread, message) become five per batch.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from django.db import DatabaseError, IntegrityError, connection
from django.db.models import Field, Model, signals
from django.db.models.base import ModelState

#: a model, or a model and the names of the only fields to read of it (the others are left deferred: read
#: from the database if ever used, as with QuerySet.only)
Shape = type[Model] | tuple[type[Model], tuple[str, ...]]


def _shape(shape: Shape) -> tuple[type[Model], tuple[str, ...] | None]:
    return shape if isinstance(shape, tuple) else (shape, None)


@functools.cache
def _read_fields(model: type[Model], names: tuple[str, ...] | None) -> list[Field]:
    return list(model._meta.concrete_fields) if names is None else [model._meta.get_field(name) for name in names]


def columns(shape: Shape, alias: str) -> str:
    """The model's concrete columns (or only the named fields') under a table alias, in the order `instances` reads them."""
    return ", ".join(f'{alias}."{f.column}"' for f in _read_fields(*_shape(shape)))


@functools.cache
def _loader(model: type[Model], names: tuple[str, ...] | None = None) -> tuple[list[str], list[tuple[int, Any]], bool]:
    """Attribute names in column order, the fields whose database values need converting, and whether
    the model builds its instances as Model does (no from_db or __init__ of its own)."""
    fields = _read_fields(model, names)
    plain = model.from_db.__func__ is Model.from_db.__func__ and model.__init__ is Model.__init__  # type: ignore[attr-defined]
    return [f.attname for f in fields], [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")], plain


def _instance(model: type[Model], values: Sequence[Any], names: tuple[str, ...] | None = None) -> Any:
    """A model instance from its columns in concrete-field order, or in the order of the fields `names` with
    the others deferred (None when a LEFT JOIN found none).

    What Model.from_db makes, with the values put in the instance's __dict__ at once: __init__ set
    them one by one through setattr and sent two signals, a third of building the five instances of a
    claim (bench/claim.py). Nothing listens to those signals here; a model with listeners, or with a
    from_db or __init__ of its own, still goes through from_db."""
    if values[0] is None:
        return None
    attnames, converted, plain = _loader(model, names)
    values = list(values)
    for i, field in converted:
        values[i] = field.from_db_value(values[i], None, connection)
    if not plain or signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return model.from_db(connection.alias, attnames, values)
    instance = model.__new__(model)
    instance._state = ModelState()
    instance._state.adding, instance._state.db = False, connection.alias
    instance.__dict__.update(zip(attnames, values))
    return instance


def instances(row: Sequence[Any], shapes: Sequence[Shape]) -> list[Any]:
    """One instance per model from consecutive runs of `columns(shape, …)` in the row."""
    out, start = [], 0
    for shape in shapes:
        model, names = _shape(shape)
        width = len(_read_fields(model, names))
        out.append(_instance(model, row[start:start + width], names))
        start += width
    return out


def with_related(row: Sequence[Any], shape: Shape, fields: Sequence[Any], *more: Shape,
                 related: Sequence[tuple[str, ...] | None] = ()) -> list[Any]:
    """The instance of `shape` from the row's first columns with the rows its foreign keys `fields` point at
    attached, as select_related attaches them (each with only the fields `related` names, in order, if
    given), then one instance per shape of `more` that follows."""
    names = list(related) or [None] * len(fields)
    targets = [(f.related_model, n) if n is not None else f.related_model for f, n in zip(fields, names, strict=True)]
    instance, *rest = instances(row, [shape, *targets, *more])
    for field, other in zip(fields, rest):
        field.set_cached_value(instance, other)
    return [instance, *rest[len(fields):]]


def related_joins(fields: Sequence[Any], alias: str = "m") -> tuple[str, str]:
    """The columns of the rows the foreign keys `fields` of the table aliased `alias` point at (aliased
    r0, r1, …, in `with_related`'s order), and their LEFT JOINs."""
    quote = connection.ops.quote_name
    selected = ", ".join(columns(f.related_model, f"r{i}") for i, f in enumerate(fields))
    joins = "".join(
        f" LEFT JOIN {quote(f.related_model._meta.db_table)} r{i} ON r{i}.{quote(f.target_field.column)} = {alias}.{quote(f.column)}"
        for i, f in enumerate(fields)
    )
    return selected, joins


@functools.cache
def select_sql(model: type[Model], related: tuple[str, ...], where: str) -> str:
    """SELECT of `model` (alias m) and, LEFT JOINed, the rows its foreign keys `related` point at,
    WHERE `where` (an ORDER BY may follow): the statement `select_with` runs, built once per process."""
    selected, joins = related_joins([model._meta.get_field(name) for name in related])
    selected = ", ".join(filter(None, [columns(model, "m"), selected]))  # `related` may be empty
    return f"SELECT {selected} FROM {connection.ops.quote_name(model._meta.db_table)} m{joins} WHERE {where}"


def select_with(model: type[Model], related: tuple[str, ...], where: str, params: Sequence[Any]) -> list[Any]:
    """What `model.objects.select_related(*related).filter(…)` returns, from a statement built once
    (`select_sql`; PostgreSQL only, see `instances`) and prepared: the apply's per-batch reads and the
    ticket requests' cost the ORM more CPU to compile than PostgreSQL to run."""
    fields = [model._meta.get_field(name) for name in related]
    with prepared_cursor() as cursor:
        cursor.execute(select_sql(model, related, where), params)
        return [with_related(row, model, fields)[0] for row in cursor.fetchall()]


def prepared_cursor() -> Any:
    """A Django cursor; on PostgreSQL one binding parameters on the server and preparing each
    statement the first time a connection runs it: PostgreSQL then plans it once, not on every call.

    Django opens connections with psycopg's preparing off (prepare_threshold None, for
    transaction-mode poolers), and psycopg then ignores even prepare=True: the claim was planned
    on every call, ~1 ms of PostgreSQL CPU (docs/benchmarks.md). So the connection's threshold
    becomes "never on its own" and these cursors ask for preparing; other server-binding cursors
    on the connection (the parity report's) still never prepare. A deployment behind such a
    pooler sets OPTIONS["prepare_threshold"] and that choice is kept.

    Planned once means a generic plan, the one tests/core/test_ingest_plans.py and the claim's plan
    test check: the connection's plan_cache_mode is set to force it (`_plan_generically`). Left to
    itself PostgreSQL planned the first five calls of each statement for their parameters, and then
    kept doing so for the claim, whose generic plan it costed higher: every claim was planned again,
    2-3 ms of PostgreSQL CPU per round of claims, as long as its execution (bench/claim.py)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    raw_connection = connection.connection
    prepare = "prepare_threshold" not in connection.settings_dict["OPTIONS"]
    if prepare and raw_connection.prepare_threshold is None:
        raw_connection.prepare_threshold = _NEVER_ON_ITS_OWN
    if prepare and raw_connection not in _generic:
        with connection.wrap_database_errors:
            _plan_generically(raw_connection)
    with connection.wrap_database_errors:
        raw = (_preparing_cursor() if prepare else psycopg.Cursor)(raw_connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


#: a psycopg prepare_threshold no statement reaches: only an explicit prepare=True prepares
_NEVER_ON_ITS_OWN = 2**31 - 1
#: the server connections whose session plans prepared statements generically
_generic: weakref.WeakSet[Any] = weakref.WeakSet()


def _plan_generically(raw_connection: Any) -> None:
    """Set the session's plan_cache_mode to force_generic_plan, once per server connection (a pool hands
    it from request to request with its settings). Only outside a transaction: a SET made inside one is
    undone if it rolls back, so a connection first met inside one is set the next time it is idle. Only
    prepared statements (and PL/pgSQL's, none here) follow this setting: the ORM's are not prepared."""
    import psycopg

    if raw_connection.autocommit and raw_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        raw_connection.execute("SET plan_cache_mode = force_generic_plan")
        _generic.add(raw_connection)


@functools.cache
def _preparing_cursor() -> type:
    """psycopg's Cursor, asking to prepare every statement it runs."""
    import psycopg

    class PreparingCursor(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=True if prepare is None else prepare, **kwargs)

    return PreparingCursor


@functools.cache
def _fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in model._meta.local_concrete_fields if f is not model._meta.auto_field and not f.generated)


@functools.cache
def _sql(model: type[Model]) -> str:
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in _fields(model))
    # WITH ORDINALITY … ORDER BY: the ids come back in the order of the rows given
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json) "
        f"WITH ORDINALITY AS r ORDER BY r.ordinality RETURNING {quote(model._meta.pk.column)}"
    )


def stored(obj: Model, pk: Any) -> None:
    """Mark `obj` as the row with id `pk` that this connection's database holds (what save() leaves)."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def _plain(value: object) -> str:
    """What json.dumps cannot write itself, in PostgreSQL's input syntax."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # bytea's hex format
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
    deferred = _deferred.get()
    if deferred is not None and deferred.defer(model, objs, rows):
        return
    try:
        payload = json.dumps(rows, default=_plain, allow_nan=False)
    except (TypeError, ValueError):
        model._default_manager.bulk_create(objs)
        return
    with prepared_cursor() as cursor:
        cursor.execute(_sql(model), [payload])
        ids = cursor.fetchall()
    for obj, (pk,) in zip(objs, ids, strict=True):
        stored(obj, pk)


@functools.cache
def _update_sql(model: type[Model], columns: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    assignments = ", ".join(f"{quote(column)} = r.{quote(column)}" for column in columns)
    # The ids again as an array: PostgreSQL reckons json_populate_recordset at 100 rows whatever it
    # holds, and so joined by a scan of the whole table (a follow-up's ticket UPDATE: 2 ms at 8,000
    # tickets); `= ANY` of the ids makes it fetch the rows by their primary key.
    return (
        f"UPDATE {table} SET {assignments} FROM json_populate_recordset(NULL::{table}, %s::json) AS r "
        f"WHERE {table}.{pk} = r.{pk} AND {table}.{pk} = ANY(%s::{model._meta.pk.cast_db_type(connection)}[])"
    )


def rows_update(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """UPDATE the named fields of `objs` (all of one model, saved) in one statement, built once per
    model and field list; the rows travel as one JSON parameter, as in `rows_insert`.

    What `save(update_fields=…)` does, without compiling an UPDATE per object (a follow-up's ticket
    UPDATE was a tenth of the apply's CPU): auto_now fields named are stamped, and a row that is
    gone raises DatabaseError.
    """
    if not objs:
        return
    model = type(objs[0])
    names = list(dict.fromkeys(fields))
    chosen = [model._meta.get_field(name) for name in names]
    if connection.vendor != "postgresql":
        for obj in objs:
            obj.save(update_fields=names)
        return
    pk = model._meta.pk
    rows = [
        {pk.column: obj.pk, **{f.column: f.get_prep_value(f.pre_save(obj, False)) for f in chosen}} for obj in objs
    ]
    deferred = _deferred.get()
    if deferred is not None and deferred.defer_update(model, tuple(f.column for f in chosen), objs, rows):
        return
    try:
        payload = json.dumps(rows, default=_plain, allow_nan=False)
    except (TypeError, ValueError):
        for obj in objs:
            obj.save(update_fields=names)
        return
    with prepared_cursor() as cursor:
        cursor.execute(_update_sql(model, tuple(f.column for f in chosen)), [payload, [obj.pk for obj in objs]])
        updated = cursor.rowcount
    if updated != len(objs):
        raise DatabaseError(f"{len(objs) - updated} of {len(objs)} {model._meta.label} rows to update are gone")


class RowsConflict(IntegrityError):
    """A row `rows_deferred` held back met a unique constraint when it was written; `owner` is what the
    block's `owner` was when the row was given to `rows_insert`."""

    def __init__(self, message: str, owner: object) -> None:
        super().__init__(message)
        self.owner = owner


class RowsGone(DatabaseError):
    """A row whose UPDATE `rows_deferred` held back was gone when it was written (as in `rows_update`)."""

    def __init__(self, message: str, owner: object) -> None:
        super().__init__(message)
        self.owner = owner


#: the writes held back by `rows_deferred`
_deferred: contextvars.ContextVar[_Deferred | None] = contextvars.ContextVar("rows_deferred", default=None)


@contextlib.contextmanager
def rows_deferred(reserve: Mapping[type[Model], int]) -> Iterator[_Deferred | None]:
    """Within this block (an apply batch under one savepoint) `rows_insert` of the models in `reserve`
    gives the objects ids taken from their sequence beforehand (up to `reserve[model]` of them, in one
    statement for all the models) and holds the rows back; they are written, one INSERT per model, just
    before the connection runs any other statement, and when the block ends. So the new-ticket path's
    five INSERTs per item become five per batch, while every statement still sees the rows written
    before it, as without the block.

    A held row that meets a unique constraint (another worker won a race) raises RowsConflict, naming
    the block's `owner` when the row was held, at the statement that wrote it and at every statement
    after it in the block (the conflict cannot be caught and forgotten on the way), so the caller
    rolls back the savepoint. Ids reserved and not used are skipped, as after a rollback. `rows_update`
    is held back the same way (one UPDATE per model and field list), a row gone raising RowsGone.
    PostgreSQL only; elsewhere, or with nothing to reserve, the block changes nothing."""
    wanted = {model: count for model, count in reserve.items() if count > 0}
    if connection.vendor != "postgresql" or not wanted or _deferred.get() is not None:
        yield None
        return
    deferred = _Deferred(_ids_reserve(wanted))
    token = _deferred.set(deferred)
    try:
        with connection.execute_wrapper(deferred.before_statement):
            yield deferred
            deferred.flush()
    finally:
        _deferred.reset(token)


class _Deferred:
    def __init__(self, ids: dict[type[Model], list[int]]) -> None:
        self.ids = ids
        #: per model, in the order first held: (its reserved id, the row as JSON, its owner) for each row
        self.rows: dict[type[Model], list[tuple[int, str, object]]] = {}
        #: per model and columns, in the order first held: (the row as JSON, its owner, its id) for each row
        self.updates: dict[tuple[type[Model], tuple[str, ...]], list[tuple[str, object, Any]]] = {}
        self._updating: set[tuple[type[Model], Any]] = set()
        self.owner: object = None
        #: what writing held rows raised: raised again at every statement after it in the block
        self.failure: RowsConflict | RowsGone | None = None
        #: the owner of the rows being written when writing them failed, whatever the error (a deadlock too)
        self.blamed: object = None
        self._writing = False

    def defer(self, model: type[Model], objs: Sequence[Model], rows: list[dict[str, Any]]) -> bool:
        """Hold the rows back with reserved ids; False (write them now) when too few are left or a
        value is not sent as JSON."""
        pool = self.ids.get(model, [])
        if len(pool) < len(objs):
            return False
        pk, ids = model._meta.pk.column, pool[:len(objs)]
        try:
            dumped = [json.dumps({pk: id_, **row}, default=_plain, allow_nan=False) for id_, row in zip(ids, rows)]
        except (TypeError, ValueError):
            return False
        del pool[:len(objs)]
        held = self.rows.setdefault(model, [])
        for obj, id_, text in zip(objs, ids, dumped, strict=True):
            stored(obj, id_)
            held.append((id_, text, self.owner))
        return True

    def defer_update(
        self, model: type[Model], columns: tuple[str, ...], objs: Sequence[Model], rows: list[dict[str, Any]]
    ) -> bool:
        """Hold an UPDATE back; False (write it now) when a value is not sent as JSON. A row already held
        for an UPDATE has the held ones written first, so no statement sets one row twice."""
        try:
            dumped = [json.dumps(row, default=_plain, allow_nan=False) for row in rows]
        except (TypeError, ValueError):
            return False
        if any((model, obj.pk) in self._updating for obj in objs):
            self.flush()
        held = self.updates.setdefault((model, columns), [])
        for obj, text in zip(objs, dumped, strict=True):
            self._updating.add((model, obj.pk))
            held.append((text, self.owner, obj.pk))
        return True

    def before_statement(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        if not self._writing:
            self.flush()
        return execute(sql, params, many, context)

    def flush(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not (self.rows or self.updates):
            return
        held, self.rows = self.rows, {}
        updates, self.updates = self.updates, {}
        self._updating = set()
        self._writing = True
        try:
            with prepared_cursor() as cursor:
                for model, rows in held.items():
                    self.blamed = rows[0][2]
                    cursor.execute(_sql_with_ids(model), ["[" + ",".join(text for _, text, _ in rows) + "]"])
                    written = {pk for pk, in cursor.fetchall()}
                    lost = [owner for pk, _, owner in rows if pk not in written]
                    if lost:
                        self.blamed, label = lost[0], model._meta.label
                        self.failure = RowsConflict(f"{len(lost)} {label} row(s) already exist (a unique constraint)", lost[0])
                        raise self.failure
                for (model, columns), texts in updates.items():
                    self.blamed = texts[0][1]
                    payload = "[" + ",".join(text for text, _, _ in texts) + "]"
                    cursor.execute(_update_sql(model, columns), [payload, [pk for _, _, pk in texts]])
                    if cursor.rowcount != len(texts):
                        label, gone = model._meta.label, len(texts) - cursor.rowcount
                        self.failure = RowsGone(f"{gone} of {len(texts)} {label} rows to update are gone", texts[0][1])
                        raise self.failure
            self.blamed = None
        finally:
            self._writing = False


@functools.cache
def _sql_with_ids(model: type[Model]) -> str:
    """INSERT of rows that carry their ids, skipping (not failing on) rows that meet a unique constraint:
    the ids written come back, so the ones missing name the rows that conflicted."""
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    columns = ", ".join([pk, *(quote(f.column) for f in _fields(model))])
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json) "
        f"ON CONFLICT DO NOTHING RETURNING {pk}"
    )


def _ids_reserve(wanted: Mapping[type[Model], int]) -> dict[type[Model], list[int]]:
    """`wanted[model]` ids from each model's sequence, in one statement."""
    models = sorted(wanted, key=lambda model: model._meta.label)
    with prepared_cursor() as cursor:
        cursor.execute(_reserve_sql(tuple(models)), [wanted[model] for model in models])
        row = cursor.fetchone()
    return {model: list(ids) for model, ids in zip(models, row, strict=True)}


@functools.cache
def _reserve_sql(models: tuple[type[Model], ...]) -> str:
    def sequence(model: type[Model]) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [connection.ops.quote_name(model._meta.db_table),
                                                                      model._meta.pk.column])
            (name,) = cursor.fetchone()
        return str(name).replace("'", "''")

    arrays = ", ".join(f"ARRAY(SELECT nextval('{sequence(m)}') FROM generate_series(1, %s))" for m in models)
    return f"SELECT {arrays}"
