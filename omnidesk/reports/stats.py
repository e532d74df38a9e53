"""Parity statistics: percentiles, intervals and tests. Pure Python, no Django, no numpy.

Every function here is deterministic and exhaustively tested (tests/reports/test_stats.py), so
the database paths only have to produce the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

#: two-sided 95% normal quantile
Z95 = 1.959963984540054


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks: PostgreSQL's percentile_cont(q)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], not {q}")
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    return interpolate(ordered[lo], ordered[math.ceil(pos)], pos, lo)


def interpolate(low: float, high: float, pos: float, lo: int) -> float:
    """percentile_cont between the order statistics at ranks floor(pos) = lo and ceil(pos)."""
    if pos == lo:
        return float(low)
    # the same expression PostgreSQL evaluates, so both paths agree to the last bit
    return float(low) + (pos - lo) * (float(high) - float(low))


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion; None without observations."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not within [0, {n}]")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # clamp rounding noise; the exact interval always lies within [0, 1] and contains p
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


@dataclass(frozen=True)
class Significance:
    statistic: float
    p_value: float


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> Significance | None:
    """Pooled two-proportion z-test, two-sided; None when it is undefined (no data, no variance)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return Significance(0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return Significance(z, min(1.0, 2 * normal_sf(abs(z))))


def mann_whitney_counts(a: Mapping[int, int], b: Mapping[int, int]) -> Significance | None:
    """Mann–Whitney U of sample a against b, given as {value: count}; normal approximation with
    tie correction, two-sided. The statistic is z (positive: a tends to be larger)."""
    n1 = sum(a.values())
    n2 = sum(b.values())
    if n1 <= 0 or n2 <= 0:
        return None
    u = 0.0
    b_below = 0
    ties = 0.0
    for v in sorted(set(a) | set(b)):
        ca, cb = a.get(v, 0), b.get(v, 0)
        u += ca * (b_below + 0.5 * cb)
        b_below += cb
        t = ca + cb
        ties += t * t * t - t
    n = n1 + n2
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return Significance(0.0, 1.0)
    z = (u - mean) / math.sqrt(var)
    return Significance(z, min(1.0, 2 * normal_sf(abs(z))))


def mann_whitney(a: Iterable[float], b: Iterable[float]) -> Significance | None:
    """Mann–Whitney U on raw values (ties corrected)."""
    return mann_whitney_counts(_counts(a), _counts(b))


def _counts(values: Iterable[float]) -> dict[float, int]:  # type: ignore[type-arg]
    out: dict[float, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def merge_counts(*hists: Mapping[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for v, c in h.items():
            out[v] = out.get(v, 0) + c
    return out


# --- the gap rule ------------------------------------------------------------------------------

Direction = Literal["higher_is_better", "lower_is_better"]
Verdict = Literal["gap", "no_gap", "not_significant", "small_sample", "no_data", "reference"]


@dataclass(frozen=True)
class GapRule:
    """A gap is flagged only when it is both material and significant, and never on a small sample."""

    materiality: float = 0.20
    alpha: float = 0.05
    min_n: int = 30


@dataclass(frozen=True)
class Gap:
    verdict: Verdict
    value: float | None
    reference: float | None
    #: how much worse, relative to the reference (0.25 = 25% worse); negative = better
    relative: float | None
    p_value: float | None
    n: int
    n_reference: int

    @property
    def flagged(self) -> bool:
        return self.verdict == "gap"


def relative_worse(value: float, reference: float, direction: Direction) -> float | None:
    """How much worse value is than reference, as a fraction of the reference."""
    if direction == "lower_is_better":
        if reference == 0:
            return None if value == 0 else math.inf
        return (value - reference) / reference
    if reference == 0:
        return None
    return (reference - value) / reference


def gap_assess(
    *,
    value: float | None,
    reference: float | None,
    n: int,
    n_reference: int,
    direction: Direction,
    test: Significance | None,
    rule: GapRule,
) -> Gap:
    """Apply the rule: small samples are said to be small; a gap needs materiality AND p < alpha."""
    if value is None or reference is None or n == 0 or n_reference == 0:
        return Gap("no_data", value, reference, None, None, n, n_reference)
    rel = relative_worse(value, reference, direction)
    p = test.p_value if test is not None else None
    if n < rule.min_n or n_reference < rule.min_n:
        return Gap("small_sample", value, reference, rel, p, n, n_reference)
    if rel is None or rel < rule.materiality:
        return Gap("no_gap", value, reference, rel, p, n, n_reference)
    if p is None or p >= rule.alpha:
        return Gap("not_significant", value, reference, rel, p, n, n_reference)
    return Gap("gap", value, reference, rel, p, n, n_reference)


def sample_wording(n: int, min_n: int) -> str:
    """What to say about a sample size next to a figure."""
    if n == 0:
        return "no data"
    if n < min_n:
        return f"sample too small (n={n} < {min_n})"
    return f"n={n}"
