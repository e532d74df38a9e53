"""Exact percentiles from a bucketed histogram, without sorting the whole sample.

The database returns, per (group, bucket): the count, the smallest and the largest value. The order
statistics a percentile needs (percentile_cont: ranks floor and ceil of q·(n−1)) are located in their
bucket by cumulative counts; one is known at once when it is its bucket's first or last value or
the bucket holds a single distinct value. Only the others are read back ("refined"): the values of
those few buckets, sorted here. The result equals percentile_cont on the raw values, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .stats import interpolate


@dataclass
class Bucket:
    n: int
    lo: float
    hi: float

    def merge(self, other: Bucket) -> None:
        self.n += other.n
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)


@dataclass
class Needed:
    """One order statistic that must be read back: the `offset`-th smallest value of `bucket`."""

    bucket: int
    offset: int


@dataclass
class Plan:
    """How to get the percentiles of one group: known order statistics, and the ones to refine."""

    n: int
    #: q -> (position q·(n−1), rank of the lower and the upper order statistic)
    positions: dict[float, tuple[float, int, int]] = field(default_factory=dict)
    #: rank -> its value, or a Needed to read back
    ranks: dict[int, float | Needed] = field(default_factory=dict)


def merged(groups: Iterable[Mapping[int, Bucket]]) -> dict[int, Bucket]:
    """Several groups' histograms as one (the pool)."""
    out: dict[int, Bucket] = {}
    for hist in groups:
        for b, bucket in hist.items():
            if b in out:
                out[b].merge(bucket)
            else:
                out[b] = Bucket(bucket.n, bucket.lo, bucket.hi)
    return out


def plan_make(hist: Mapping[int, Bucket], quantiles: Iterable[float]) -> Plan:
    """Locate the order statistics of each quantile in the histogram (no values read yet)."""
    n = sum(b.n for b in hist.values())
    plan = Plan(n=n)
    if n == 0:
        return plan
    for q in quantiles:
        pos = q * (n - 1)
        plan.positions[q] = (pos, math.floor(pos), math.ceil(pos))
    wanted = sorted({r for _, lo, hi in plan.positions.values() for r in (lo, hi)})
    seen = 0
    it = iter(wanted)
    rank = next(it, None)
    for b in sorted(hist):
        bucket = hist[b]
        while rank is not None and rank < seen + bucket.n:
            offset = rank - seen
            if bucket.lo == bucket.hi or offset == 0:
                plan.ranks[rank] = bucket.lo
            elif offset == bucket.n - 1:
                plan.ranks[rank] = bucket.hi
            else:
                plan.ranks[rank] = Needed(b, offset)
            rank = next(it, None)
        seen += bucket.n
    return plan


def plan_needs(plan: Plan) -> set[int]:
    """The buckets whose values must be read back."""
    return {v.bucket for v in plan.ranks.values() if isinstance(v, Needed)}


def plan_finish(plan: Plan, values: Mapping[int, list[float]]) -> dict[float, float]:
    """The percentiles (none for an empty group), given the sorted values of the buckets plan_needs named."""
    ranks = {r: values[v.bucket][v.offset] if isinstance(v, Needed) else v for r, v in plan.ranks.items()}
    return {q: interpolate(ranks[lo], ranks[hi], pos, lo) for q, (pos, lo, hi) in plan.positions.items()}
