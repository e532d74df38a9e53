"""The PostgreSQL path's samples: binary values decoded exactly, numpy percentiles equal to percentile_cont."""

from __future__ import annotations

import importlib
import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from omnidesk.customers.models import Customer
from omnidesk.reports import metrics
from omnidesk.reports.metrics import figures_compute
from omnidesk.reports.samples import (
    histogram,
    percentiles,
    seconds_from_floats,
    seconds_from_intervals,
)
from omnidesk.reports.stats import percentile
from omnidesk.rows import rows_insert
from omnidesk.tickets.models import Ticket
from tests.conftest import statements_sent

from .builders import Spec, account, build
from .test_report import SCOPE, same, small_dataset

QS = (0.0, 0.01, 0.5, 0.9, 0.99, 1.0)
floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_subnormal=True)


def binary(sql: str, params: list[object]) -> bytes:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(sql, params, binary=True)
        return cur.fetchone()[0]  # type: ignore[index, no-any-return]


def test_intervals_are_exact_seconds_as_total_seconds(postgres, db):  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    earlier = [t0 + timedelta(microseconds=rng.randrange(10**14)) for _ in range(500)]
    later = [e + timedelta(microseconds=rng.randrange(-10**11, 10**13)) for e in earlier]
    data = binary(
        "SELECT string_agg(interval_send(b - a), ''::bytea ORDER BY i)"
        " FROM unnest(%s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY AS x(a, b, i)",
        [earlier, later],
    )
    assert seconds_from_intervals(data).tolist() == [(b - a).total_seconds() for a, b in zip(earlier, later, strict=True)]


def test_floats_arrive_bit_for_bit(postgres, db):  # type: ignore[no-untyped-def]
    values = [0.1, -2.5, 1e-310, 5e-324, 123456.789012, 0.0]
    data = binary("SELECT string_agg(float8send(v), ''::bytea ORDER BY i) FROM unnest(%s::float8[]) WITH ORDINALITY AS x(v, i)",
                  [values])
    assert seconds_from_floats(data).tolist() == values
    assert seconds_from_floats(None).tolist() == []


def test_an_interval_with_months_is_refused():
    with pytest.raises(ValueError, match="months"):
        seconds_from_intervals(np.array([(0, 0, 1)], dtype=[("us", ">i8"), ("days", ">i4"), ("months", ">i4")]).tobytes())


@given(st.lists(floats, max_size=60), st.lists(st.sampled_from(QS), min_size=1, max_size=4))
def test_percentiles_equal_percentile_cont(values, qs):  # type: ignore[no-untyped-def]
    got = percentiles(np.array(values, dtype=np.float64), qs)
    assert got == {q: percentile(values, q) for q in qs}
    assert all(v is None or type(v) is float for v in got.values())


@given(st.lists(st.one_of(floats, st.sampled_from([0.0, 59.999999, 60.0, -60.0])), max_size=60),
       st.sampled_from([1, 60, 3600]))
def test_histogram_counts_floor_buckets(values, width):  # type: ignore[no-untyped-def]
    want: dict[int, int] = {}
    for v in values:
        want[math.floor(v / width)] = want.get(math.floor(v / width), 0) + 1
    assert histogram(np.array(values, dtype=np.float64), width) == want


def test_both_paths_agree_when_the_tickets_are_split_into_page_ranges(postgres, db):  # type: ignore[no-untyped-def]
    """Each range of pages is aggregated on its own (by parallel workers when they start): every ticket counted once."""
    with connection.cursor() as cur:
        # an empty table (undone with the test's transaction): rows earlier tests rolled back would
        # otherwise fill the first pages, and these tickets would all fall in the last range
        cur.execute("TRUNCATE tickets_ticket CASCADE")
    small_dataset()
    rng = random.Random(11)
    for i in range(80):
        fr = rng.uniform(1, 7200)
        build(Spec(rng.choice(["email", "twitter", "phone"]), fr=fr, frb=fr / 3, fr_met=i % 2 == 0,
                   solved=fr + rng.uniform(1, 9000) if i % 3 else None, lag=rng.uniform(0, 9),
                   transfers=int(i % 5 == 0), follow_ups=[(fr + 5, fr + 5 + rng.uniform(1, 600))] if i % 2 else []))
    count = "SELECT count(*) FROM tickets_ticket t WHERE {}"
    with psycopg.Cursor(connection.connection) as raw:
        # a range per process (the leader and three workers), even for a table this small
        raw.execute("SET LOCAL max_parallel_workers_per_gather = 3")
        raw.execute("SET LOCAL min_parallel_table_scan_size = 0")
        ranges = metrics._page_ranges(raw)
        per_range = [raw.execute(count.format(r)).fetchone()[0] for r in ranges]
        assert len(ranges) == 4 and sum(per_range) == 89 and all(per_range), per_range
        pg = figures_compute(scope=SCOPE, portable=False)
    same(pg, figures_compute(scope=SCOPE, portable=True))
    assert pg["all"].volume == 87


def test_the_migration_to_bytes_keeps_every_sample_bit_for_bit(postgres, db):  # type: ignore[no-untyped-def]
    migration = importlib.import_module("omnidesk.tickets.migrations.0006_report_columns")
    lists = [[0.1, -2.5, 1e-310, 5e-324, 123456.789012, 0.0], [], [86400.000001]]
    with connection.cursor() as cur:
        # a temporary table of the same name comes first on the search path: the migration's SQL converts it
        cur.execute("CREATE TEMPORARY TABLE tickets_ticket (i int, next_response_samples float8[], ingest_lag_samples float8[])")
        for i, values in enumerate(lists):
            cur.execute("INSERT INTO tickets_ticket VALUES (%s, %s::float8[], %s::float8[])", [i, values, values[::-1]])
        for sql in migration._TO_BYTES:
            cur.execute(sql)
        cur.execute("SELECT next_response_samples, ingest_lag_samples FROM tickets_ticket ORDER BY i")
        rows = cur.fetchall()
        cur.execute("DROP TABLE pg_temp.tickets_ticket")
    field = Ticket._meta.get_field("next_response_samples")
    got = [[field.from_db_value(v, None, connection) for v in row] for row in rows]
    assert got == [[values, values[::-1]] for values in lists]
    assert all(type(v) is float for row in got for values in row for v in values)


def test_new_tickets_keep_their_samples_in_the_one_json_insert(postgres, db):  # type: ignore[no-untyped-def]
    """rows_insert sends the sample bytes as bytea's hex text instead of falling back to the ORM's INSERT."""
    ticket = Ticket(origin_account=account("email"), customer=Customer.objects.create(display_name="c"),
                    ingest_lag_samples=[1.5, 1e-310], next_response_samples=[])
    with statements_sent() as sql:
        rows_insert([ticket])
    assert len(sql) == 1 and "json_populate_recordset" in sql[0]
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.ingest_lag_samples, stored.next_response_samples) == ([1.5, 1e-310], [])
