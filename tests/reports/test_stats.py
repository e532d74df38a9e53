"""The pure statistics, checked against independent reference implementations with hypothesis."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnidesk.reports.stats import (
    GapRule,
    Significance,
    gap_assess,
    mann_whitney,
    mann_whitney_counts,
    normal_sf,
    percentile,
    relative_worse,
    sample_wording,
    two_proportion_z,
    wilson_interval,
)

floats = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False)
quantiles = st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]) | st.floats(0, 1)


def ref_percentile(values: list[float], q: float) -> float:
    """percentile_cont as the SQL standard defines it, in exact rational arithmetic."""
    xs = sorted(Fraction(v) for v in values)
    rn = Fraction(q) * (len(xs) - 1)
    frn, crn = math.floor(rn), math.ceil(rn)
    if frn == crn:
        return float(xs[frn])
    return float(xs[frn] + (rn - frn) * (xs[crn] - xs[frn]))


@given(st.lists(floats, min_size=1, max_size=60), quantiles)
def test_percentile_matches_exact_percentile_cont(values, q):
    got = percentile(values, q)
    want = ref_percentile(values, q)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-6)
    assert min(values) <= got <= max(values)


@given(st.lists(floats, min_size=1, max_size=40), quantiles, quantiles)
def test_percentile_is_monotone_in_q(values, q1, q2):
    lo, hi = sorted((q1, q2))
    assert percentile(values, lo) <= percentile(values, hi) + 1e-9


def test_percentile_known_values():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.99) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10, 20, 30, 40, 50], 0.9) == pytest.approx(46.0)
    with pytest.raises(ValueError):
        percentile([1], 1.5)


@given(st.integers(1, 5000), st.data())
def test_wilson_within_unit_interval_and_contains_p(n, data):
    x = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(x, n)
    assert 0.0 <= lo <= x / n <= hi <= 1.0


@given(st.integers(1, 2000), st.data())
def test_wilson_matches_closed_form_and_narrows_with_n(n, data):
    x = data.draw(st.integers(0, n))
    z = 1.959963984540054
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = wilson_interval(x, n)
    assert lo == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert hi == pytest.approx(min(1.0, centre + half), abs=1e-12)
    lo4, hi4 = wilson_interval(4 * x, 4 * n)
    assert hi4 - lo4 <= hi - lo + 1e-12


def test_wilson_known_value_and_empty():
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)


@given(st.integers(1, 500), st.integers(1, 500), st.data())
def test_two_proportion_is_antisymmetric_and_p_in_range(n1, n2, data):
    x1 = data.draw(st.integers(0, n1))
    x2 = data.draw(st.integers(0, n2))
    a = two_proportion_z(x1, n1, x2, n2)
    b = two_proportion_z(x2, n2, x1, n1)
    assert a.statistic == pytest.approx(-b.statistic, abs=1e-12)
    assert a.p_value == pytest.approx(b.p_value, abs=1e-12)
    assert 0.0 <= a.p_value <= 1.0
    if x1 * n2 == x2 * n1:
        assert a.p_value == pytest.approx(1.0)


def test_two_proportion_known_value():
    # 45/50 vs 30/50: z = 3.4641 (pooled p = 0.75)
    r = two_proportion_z(45, 50, 30, 50)
    assert r.statistic == pytest.approx(3.464101615, rel=1e-9)
    assert r.p_value == pytest.approx(0.000532, abs=1e-6)
    assert two_proportion_z(0, 0, 1, 2) is None


def ref_mann_whitney(a: list[int], b: list[int]) -> Significance:
    """Brute force: U by pairwise comparison, tie-corrected variance from the pooled tie groups."""
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in itertools.product(a, b))
    n1, n2 = len(a), len(b)
    n = n1 + n2
    pooled = sorted(a + b)
    ties = sum(len(list(g)) ** 3 - len(list(g)) for _, g in itertools.groupby(pooled) for g in [list(g)])
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return Significance(0.0, 1.0)
    z = (u - n1 * n2 / 2) / math.sqrt(var)
    return Significance(z, min(1.0, 2 * normal_sf(abs(z))))


@settings(max_examples=200)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=30), st.lists(st.integers(0, 20), min_size=1, max_size=30))
def test_mann_whitney_matches_brute_force(a, b):
    got = mann_whitney(a, b)
    want = ref_mann_whitney(a, b)
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.p_value == pytest.approx(want.p_value, abs=1e-9)
    flipped = mann_whitney(b, a)
    assert flipped.statistic == pytest.approx(-got.statistic, abs=1e-9)


def test_mann_whitney_known_values():
    # clearly shifted samples
    r = mann_whitney(list(range(20, 40)), list(range(0, 20)))
    assert r.statistic > 5 and r.p_value < 1e-6
    assert mann_whitney([5, 5], [5, 5]).p_value == 1.0
    assert mann_whitney_counts({}, {1: 3}) is None


@given(st.floats(0, 1e6), st.floats(0.001, 1e6))
def test_relative_worse_sign(value, reference):
    slow = relative_worse(value, reference, "lower_is_better")
    low = relative_worse(value, reference, "higher_is_better")
    assert (slow > 0) == (value > reference)
    assert (low > 0) == (value < reference)


RULE = GapRule(materiality=0.2, alpha=0.05, min_n=30)
SIG = Significance(3.0, 0.001)
NOT_SIG = Significance(1.0, 0.3)


@given(st.integers(0, 29), st.integers(0, 1000))
def test_small_samples_are_never_flagged(n, n_ref):
    g = gap_assess(value=0.1, reference=0.9, n=n, n_reference=n_ref, direction="higher_is_better", test=SIG, rule=RULE)
    assert not g.flagged
    assert g.verdict in ("small_sample", "no_data")


def test_gap_needs_materiality_and_significance():
    kw = dict(n=100, n_reference=100, rule=RULE)
    assert gap_assess(value=0.6, reference=0.9, direction="higher_is_better", test=SIG, **kw).verdict == "gap"
    assert gap_assess(value=0.6, reference=0.9, direction="higher_is_better", test=NOT_SIG, **kw).verdict == "not_significant"
    assert gap_assess(value=0.8, reference=0.9, direction="higher_is_better", test=SIG, **kw).verdict == "no_gap"
    assert gap_assess(value=130, reference=100, direction="lower_is_better", test=SIG, **kw).verdict == "gap"
    assert gap_assess(value=110, reference=100, direction="lower_is_better", test=SIG, **kw).verdict == "no_gap"
    assert gap_assess(value=50, reference=100, direction="lower_is_better", test=SIG, **kw).verdict == "no_gap"
    strict = GapRule(materiality=0.05, alpha=0.0001, min_n=30)
    assert gap_assess(value=0.8, reference=0.9, direction="higher_is_better", test=SIG, n=100, n_reference=100,
                      rule=strict).verdict == "not_significant"


def test_sample_wording():
    assert sample_wording(0, 30) == "no data"
    assert sample_wording(12, 30) == "sample too small (n=12 < 30)"
    assert sample_wording(30, 30) == "n=30"
