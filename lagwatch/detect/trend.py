"""Robust trend statistics over short, irregular time series (numpy, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Trend:
    """A Theil-Sen slope (units per second) and the Mann-Kendall z-score of its sign."""

    slope: float
    z: float
    points: int


def trend(times: Sequence[float], values: Sequence[float]) -> Trend:
    """Estimate the trend of values over times.

    The slope is the median of all pairwise slopes (Theil-Sen), so one outlier or a few
    bursts cannot set it. The z-score is the Mann-Kendall statistic: how much more often
    a later value exceeds an earlier one than falls below it, in standard deviations
    (continuity-corrected; ties count as neither).
    """
    n = len(times)
    if n < 2:
        return Trend(0.0, 0.0, n)
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    i, j = np.triu_indices(n, k=1)
    dt = t[j] - t[i]
    dv = v[j] - v[i]
    usable = dt > 0
    slope = float(np.median(dv[usable] / dt[usable])) if usable.any() else 0.0
    s = float(np.sign(dv).sum())
    variance = n * (n - 1) * (2 * n + 5) / 18.0
    z = 0.0 if s == 0 else (s - math.copysign(1.0, s)) / math.sqrt(variance)
    return Trend(slope, z, n)
