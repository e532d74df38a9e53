"""The report on a hand-built dataset with exact expected numbers, on both code paths."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest

from omnidesk.reports.metrics import POOLED, Scope, figures_compute
from omnidesk.reports.parity import parity_report
from omnidesk.reports.selectors import parse_day, report_tickets
from omnidesk.reports.stats import GapRule

from .builders import T0, Spec, build

SCOPE = Scope(since=parse_day("2025-03-01", name="since"), until=parse_day("2025-04-01", name="until"))


def small_dataset(group=None):  # type: ignore[no-untyped-def]
    t = {}
    t["A"] = build(Spec("email", group, fr=600, frb=600, fr_met=True, solved=3600, res_met=True, lag=2,
                        follow_ups=[(1000, 1300)]))
    t["B"] = build(Spec("email", group, fr=1200, frb=900, fr_met=False, solved=7200, res_met=False, reopens=1,
                        transfers=2, lag=4, follow_ups=[(2000, 2600), (2100, 2600)]))
    t["C"] = build(Spec("email", group, lag=6))
    t["D"] = build(Spec("email", group, fr=300, frb=300, fr_met=True, lag=8, follow_ups=[(500, None)],
                        automated_reply=700))
    t["E"] = build(Spec("twitter", group, fr=60, frb=60, fr_met=True, public=True, handoff=True, lag=1))
    t["F"] = build(Spec("twitter", group, public=True, lag=3))
    t["G"] = build(Spec("twitter", group, fr=120, frb=100, public=True, lag=5))
    # outside [since, until): never counted
    t["old"] = build(Spec("email", group, start=T0.replace(month=2), fr=5, frb=5, fr_met=True))
    t["new"] = build(Spec("email", group, start=T0.replace(month=4), fr=5, frb=5, fr_met=True))
    return t


EXPECTED_EMAIL = dict(
    volume=4, answered=3, fr_met=2, fr_decided=3, res_met=1, res_decided=2, reopened=1, transfers=2,
    public_first=0, handed_off=0,
    pct={
        "first_response": {"p50": 600.0, "p90": 1080.0, "p99": 1188.0},
        "first_response_business": {"p50": 600.0, "p90": 840.0, "p99": 894.0},
        "next_response": {"p50": 500.0, "p90": 580.0},
        "resolution": {"p50": 5400.0, "p90": 6840.0},
        "ingest_lag": {"p50": 4.0, "p99": 8.0},
    },
    n={"first_response": 3, "first_response_business": 3, "next_response": 3, "resolution": 2, "ingest_lag": 8},
)
EXPECTED_TWITTER = dict(
    volume=3, answered=2, fr_met=1, fr_decided=1, res_met=0, res_decided=0, reopened=0, transfers=0,
    public_first=3, handed_off=1,
    pct={
        "first_response": {"p50": 90.0, "p90": 114.0, "p99": 119.4},
        "first_response_business": {"p50": 80.0, "p90": 96.0, "p99": 99.6},
        "next_response": {"p50": None, "p90": None},
        "resolution": {"p50": None, "p90": None},
        "ingest_lag": {"p50": 3.0, "p99": 4.96},
    },
    n={"first_response": 2, "first_response_business": 2, "next_response": 0, "resolution": 0, "ingest_lag": 3},
)


def check(raw, expected):  # type: ignore[no-untyped-def]
    got = asdict(raw)
    for key, want in expected.items():
        if key == "pct":
            for metric, qs in want.items():
                for q, v in qs.items():
                    assert got["pct"][metric][q] == (None if v is None else pytest.approx(v, abs=1e-9)), (metric, q)
        else:
            assert got[key] == want, key


def same(a, b):  # type: ignore[no-untyped-def]
    """Two figure sets agree: counts and histograms exactly, percentiles to the microsecond."""
    assert set(a) == set(b)
    for ch in a:
        ra, rb = asdict(a[ch]), asdict(b[ch])
        for key in ra:
            if key == "pct":
                for metric in ra["pct"]:
                    for q, v in ra["pct"][metric].items():
                        w = rb["pct"][metric][q]
                        assert (v is None) == (w is None) and (v is None or math.isclose(v, w, abs_tol=1e-6)), (ch, metric, q, v, w)
            else:
                assert ra[key] == rb[key], (ch, key)


@pytest.mark.django_db
def test_exact_numbers_portable_path():
    small_dataset()
    figures = figures_compute(scope=SCOPE, portable=True)
    check(figures["email"], EXPECTED_EMAIL)
    check(figures["twitter"], EXPECTED_TWITTER)
    pooled = figures[POOLED]
    assert (pooled.volume, pooled.answered, pooled.transfers, pooled.public_first) == (7, 5, 2, 3)
    assert pooled.pct["first_response"] == {"p50": 300.0, "p90": pytest.approx(960.0), "p99": pytest.approx(1176.0)}
    assert pooled.hist["first_response"] == {1: 1, 2: 1, 5: 1, 10: 1, 20: 1}


def test_exact_numbers_both_paths_on_postgres(postgres, db):  # type: ignore[no-untyped-def]
    """The core check: the PostgreSQL path and the portable path on the same PostgreSQL data."""
    small_dataset()
    pg = figures_compute(scope=SCOPE, portable=False)
    portable = figures_compute(scope=SCOPE, portable=True)
    check(pg["email"], EXPECTED_EMAIL)
    check(pg["twitter"], EXPECTED_TWITTER)
    same(pg, portable)


def parity_dataset(group=None):  # type: ignore[no-untyped-def]
    """email: fast and on target; twitter: slow and half missed; phone: too few tickets to judge."""
    for i in range(40):
        build(Spec("email", group, fr=300 + i, frb=300 + i, fr_met=True, solved=3600, res_met=True))
    for i in range(40):
        build(Spec("twitter", group, fr=3600 + 60 * i, frb=3600 + 60 * i, fr_met=i % 2 == 0, public=True,
                   follow_ups=[(90000, 90000 + 600 * (i + 1))]))
    for i in range(10):
        build(Spec("phone", group, fr=30000, frb=30000, fr_met=False))


@pytest.mark.django_db
def test_parity_flags_material_significant_gaps_and_never_small_samples():
    parity_dataset()
    report = parity_report(scope=SCOPE, rule=GapRule())
    assert [c["channel"] for c in report["channels"]] == ["email", "phone", "twitter"]
    assert report["best"]["sla_first_response"] == "email"
    assert report["best"]["first_response"] == "email"
    flagged = {(f["channel"], f["metric"], f["comparison"]) for f in report["flags"]}
    assert ("twitter", "sla_first_response", "vs_best") in flagged
    assert ("twitter", "first_response", "vs_best") in flagged
    assert ("twitter", "first_response_business", "vs_pool") in flagged
    assert not any(ch == "phone" for ch, _, _ in flagged)
    phone = next(c for c in report["channels"] if c["channel"] == "phone")
    assert phone["parity"]["sla_first_response"]["vs_best"]["verdict"] == "small_sample"
    assert phone["sample"] == "sample too small (n=10 < 30)"
    email = next(c for c in report["channels"] if c["channel"] == "email")
    assert email["parity"]["sla_first_response"]["vs_best"]["verdict"] == "reference"
    twitter = next(c for c in report["channels"] if c["channel"] == "twitter")
    gap = twitter["parity"]["sla_first_response"]["vs_best"]
    assert (gap["n"], gap["n_reference"], gap["relative"]) == (40, 40, 0.5)
    assert gap["p_value"] < 0.001
    fig = twitter["sla_first_response"]
    assert fig["value"] == 0.5 and fig["ci_low"] < 0.5 < fig["ci_high"]
    # a materiality nobody reaches flags nothing
    assert parity_report(scope=SCOPE, rule=GapRule(materiality=100)).get("flags") == []


def test_parity_report_same_on_both_paths_on_postgres(postgres, db):  # type: ignore[no-untyped-def]
    parity_dataset()
    small_dataset()
    a = parity_report(scope=SCOPE, portable=False)
    b = parity_report(scope=SCOPE, portable=True)
    key = lambda r: [(f["channel"], f["metric"], f["comparison"], f["n"], f["n_reference"]) for f in r["flags"]]  # noqa: E731
    assert key(a) == key(b) and key(a)
    for fa, fb in zip(a["flags"], b["flags"]):
        assert fa["p_value"] == pytest.approx(fb["p_value"], rel=1e-9)
    same(figures_compute(scope=SCOPE, portable=False), figures_compute(scope=SCOPE, portable=True))


@pytest.mark.django_db
def test_drilldown_lists_the_tickets_behind_each_figure():
    t = small_dataset()
    ids = lambda metric, channel=None, **kw: set(  # noqa: E731
        report_tickets(scope=SCOPE, metric=metric, channel=channel, **kw).values_list("pk", flat=True)
    )
    pk = lambda *names: {t[n].pk for n in names}  # noqa: E731
    assert ids("volume") == pk("A", "B", "C", "D", "E", "F", "G")
    assert ids("unanswered", "twitter") == pk("F")
    assert ids("answered", "email") == pk("A", "B", "D")
    assert ids("sla_first_response_missed") == pk("B")
    assert ids("sla_first_response", "email") == pk("A", "B", "D")
    assert ids("reopened") == pk("B")
    assert ids("transferred") == pk("B")
    assert ids("public_first") == pk("E", "F", "G")
    assert ids("handed_off") == pk("E")
    assert ids("next_response") == pk("A", "B")
    assert ids("resolution") == pk("A", "B")
    assert ids("first_response", "email", slower_than=599) == pk("A", "B")
    assert ids("first_response_business", slower_than=800) == pk("B")
    assert ids("ingest_lag", "twitter") == pk("E", "F", "G")
