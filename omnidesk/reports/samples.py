"""Time samples as numpy arrays: decoded from PostgreSQL's binary values, exact percentiles, histograms.

The PostgreSQL path of the report (omnidesk/reports/metrics.py) has the database concatenate each
channel's samples into one bytea of binary values (`float8send`, `interval_send`), so a million
samples cross the wire as a few megabytes read by np.frombuffer, not as a million rows. No Django.

Every number equals what the portable path computes in plain Python: an interval becomes
microseconds / 10**6, the correctly rounded division timedelta.total_seconds() does; percentiles
pick the same order statistics as stats.percentile and interpolate with the same expression.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from .stats import interpolate

Seconds = npt.NDArray[np.float64]

#: interval_send: microseconds (int64), days (int32), months (int32), big-endian
_INTERVAL = np.dtype([("us", ">i8"), ("days", ">i4"), ("months", ">i4")])
_US_PER_DAY = 86_400 * 10**6


def seconds_from_floats(data: bytes | None) -> Seconds:
    """Concatenated float8send values as an array."""
    return np.frombuffer(data or b"", dtype=">f8").astype(np.float64)


def seconds_from_intervals(data: bytes | None) -> Seconds:
    """Concatenated interval_send values (differences of two timestamps) as exact seconds."""
    raw = np.frombuffer(data or b"", dtype=_INTERVAL)
    if raw["months"].any():  # timestamp - timestamp never has months, whose length would be a convention
        raise ValueError("an interval with months is not a difference of two timestamps")
    us = raw["us"].astype(np.int64) + raw["days"].astype(np.int64) * _US_PER_DAY
    # exact below 2**53 µs (285 years): one correctly rounded division, as total_seconds()
    return us.astype(np.float64) / 1e6


def percentiles(values: Seconds, quantiles: Iterable[float]) -> dict[float, float | None]:
    """percentile_cont(q) for each q (None without values), choosing only the order statistics needed."""
    qs = tuple(quantiles)
    n = len(values)
    if n == 0:
        return dict.fromkeys(qs)
    positions = {q: q * (n - 1) for q in qs}
    ranks = sorted({r for pos in positions.values() for r in (math.floor(pos), math.ceil(pos))})
    chosen = np.partition(values, ranks)
    return {q: interpolate(chosen[math.floor(pos)], chosen[math.ceil(pos)], pos, math.floor(pos))
            for q, pos in positions.items()}


def histogram(values: Seconds, resolution_s: float) -> dict[int, int]:
    """{floor(v / resolution_s): count}, the buckets of the rank test.

    Counted by offset from the lowest bucket (np.bincount, no sort: a third of the report's numpy
    time went to np.unique's sort) unless the buckets are spread far wider than there are values.
    """
    buckets = np.floor(values / resolution_s)
    if not len(buckets):
        return {}
    low = buckets.min()
    if buckets.max() - low > 4 * len(buckets) + 4096:
        found, counts = np.unique(buckets, return_counts=True)
        return {int(b): c for b, c in zip(found.tolist(), counts.tolist(), strict=True)}
    counts = np.bincount((buckets - low).astype(np.int64))
    found = np.flatnonzero(counts)
    first = int(low)
    return {first + b: c for b, c in zip(found.tolist(), counts[found].tolist(), strict=True)}
