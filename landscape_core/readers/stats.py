"""Confidence intervals for numbers measured over several random directions.

One random direction is one draw: VISAGE along seeds 123, 124 and 125 of the aligned
demo is 68.1, 70.0 and 82.5. A landscape's number is therefore reported as the mean
over its directions with a bootstrap interval over directions (``scipy.stats.bootstrap``,
percentile method), and two runs are said to differ only when their intervals do not
overlap. With few directions the percentile interval is narrow (with 5 it undercovers),
so it is a floor on the uncertainty, not a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0  # the resampling is seeded, so a report is the same on every machine
METHOD = f"bootstrap over directions, percentile, {RESAMPLES:,} resamples, seed {SEED}"


@dataclass(frozen=True)
class Interval:
    """A mean over directions and its 95% interval (None with fewer than two values)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str = METHOD

    def describe(self, digits: int = 1) -> str:
        """'72.1 [68.3, 77.0]', or the bare mean when there is no interval."""
        if self.low is None or self.high is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a value (no interval: they may)."""
        if None in (self.low, self.high, other.low, other.high):
            return True
        return self.low <= other.high and other.low <= self.high  # type: ignore[operator]


def mean_interval(values: Sequence[float]) -> Interval | None:
    """The mean of ``values`` with its bootstrap interval; None for no values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, None, None, 1)
    if np.all(data == data[0]):  # every resample has this mean
        return Interval(mean, mean, mean, int(data.size))
    result = stats.bootstrap(
        (data,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    ci = result.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), int(data.size))


def differ(a: Interval | None, b: Interval | None) -> str:
    """A sentence on whether two runs' numbers differ beyond their intervals."""
    if a is None or b is None:
        return "not comparable: a run is unfinished"
    if a.low is None or b.low is None:
        return "unknown: a run has one direction, so no interval; give it seeds or repeats"
    if a.overlaps(b):
        return "no difference beyond the intervals (they overlap)"
    return "differ: the intervals do not overlap"
