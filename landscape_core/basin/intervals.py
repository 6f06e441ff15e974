"""Confidence intervals and comparisons for numbers measured over random directions.

One random direction is one draw: VISAGE along seeds 123, 124 and 125 of the aligned
demo is 68.1, 70.0 and 82.5. A landscape's number is the mean over its directions, and
its 95% interval is a t-interval over them when the prompts are fixed (a percentile
bootstrap of 5 values covers about 85%, not 95%). Where the prompts are a sample too,
``crossed_interval`` widens it by the prompts' share of the variance (directions x
prompts, crossed). Below ``MIN_DIRECTIONS`` values there is no interval: the values
themselves are shown. ``tests/test_intervals.py`` checks by simulation that both cover
95% +- 2% at 5 and 10 directions, 20 and 80 prompts.

Two runs are compared by the interval of their difference, paired over the directions
(and prompts) they share; a side ("A higher", "A lower") only when it excludes 0,
otherwise "not shown", never "no difference": an interval that holds 0 is absence of
evidence. What a difference says of a finding that predicts its sign is ``read_claim``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_DIRECTIONS = 5  # fewer values: no interval, the values are shown instead
# the risk preflight's bootstrap of a median (risk.report) still resamples
RESAMPLES = 10_000
SEED = 0  # that resampling is seeded, so a report is the same on every machine


def t_method(over: str) -> str:
    """What a t-interval over ``over`` varies, in words (shown beside the interval)."""
    return f"t-interval over {over}, the rest fixed"


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` draws (directions, goals) and its 95% interval.

    ``low``/``high`` are None with fewer than ``MIN_DIRECTIONS`` draws; ``values`` then
    carries the draws so a reader shows them instead. ``resamples`` names what the
    interval treats as random ("directions", "directions and prompts").
    """

    mean: float
    low: float | None
    high: float | None
    n: int
    resamples: str = "directions"
    method: str = t_method("directions")
    values: tuple[float, ...] = ()

    @property
    def half_width(self) -> float | None:
        """Half the interval's width: the smallest effect it could tell from 0."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2

    def describe(self, digits: int = 1) -> str:
        """'72.1 [68.3, 77.0]', or the mean and each draw when there is no interval."""
        if self.low is None or self.high is None:
            if len(self.values) < 2:
                return f"{self.mean:.{digits}f}"
            each = ", ".join(f"{v:.{digits}f}" for v in self.values)
            return f"{self.mean:.{digits}f} (each: {each}; no interval below {MIN_DIRECTIONS})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def widened(interval: Interval, by: float) -> Interval:
    """``interval`` with ``by`` more on each side, for an error it leaves out.

    Such as a grid's step, when the values it is over were read off a grid.
    """
    if interval.low is None or interval.high is None or not by:
        return interval
    return replace(interval, low=interval.low - by, high=interval.high + by)


def t_half_width(var: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """The 95% t-interval's half-width for a mean of variance ``var`` (vectorised)."""
    return stats.t.ppf(0.5 + CONFIDENCE / 2, df) * np.sqrt(np.maximum(var, 0.0))


def _t_bounds(mean: float, var: float, df: float) -> tuple[float, float]:
    half = float(t_half_width(var, df)) if var > 0 else 0.0
    return mean - half, mean + half


def mean_interval(values: Sequence[float], over: str = "directions") -> Interval | None:
    """The mean of ``values`` with its t-interval over them; None for no values.

    The draws are the only randomness (the prompts fixed): Student's t with n - 1
    degrees of freedom, exact for normal draws at any n, where a percentile bootstrap
    of 5 values covers about 85%.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    kept = tuple(float(v) for v in data)
    if data.size < MIN_DIRECTIONS:
        return Interval(mean, None, None, int(data.size), over, t_method(over), kept)
    var, df = crossed_variance(data[None, :, None])  # one prompt column: s^2 / n, n - 1
    low, high = _t_bounds(mean, float(var[0]), float(df[0]))
    return Interval(mean, low, high, int(data.size), over, t_method(over), kept)


CROSSED = "directions and prompts"
CROSSED_METHOD = (
    "t-interval over directions and prompts (crossed variance components, "
    "Satterthwaite degrees of freedom)"
)


def crossed_interval(matrix: np.ndarray, over: str = CROSSED) -> Interval | None:
    """The grand mean of a (directions, prompts) matrix with an interval where both vary.

    ``matrix[d, p]`` is prompt p's contribution along direction d (each direction's
    number is its row's mean). The variance of the grand mean is the directions' part,
    s_d^2 / n (the row means' spread, which holds the interaction), plus the prompts'
    own part, max(s_p^2 / m - MSE / (n m), 0) (the column means' spread less the
    interaction it repeats); degrees of freedom by Satterthwaite. A two-level
    percentile bootstrap (rows and columns resampled together) covers as little as
    85-92% at 5 directions (``benchmarks/interval_coverage.py``), so this is its
    t-based variant. One column: ``mean_interval``.
    """
    y = np.asarray(matrix, dtype=float)
    if y.ndim != 2 or y.size == 0:
        return None
    n, m = y.shape
    mean = float(y.mean())
    rows = tuple(float(v) for v in y.mean(axis=1))
    if n < MIN_DIRECTIONS:
        return Interval(mean, None, None, n, over, CROSSED_METHOD, rows)
    var, df = crossed_variance(y[None])
    low, high = _t_bounds(mean, float(var[0]), float(df[0]))
    return Interval(mean, low, high, n, over, CROSSED_METHOD, rows)


def crossed_variance(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance of the grand mean and its degrees of freedom, for a stack (R, n, m).

    Vectorised over the first axis so that the coverage test can simulate thousands.
    """
    _, n, m = y.shape
    grand = y.mean(axis=(1, 2))
    rows, cols = y.mean(axis=2), y.mean(axis=1)
    v_rows = rows.var(axis=1, ddof=1) / n
    if m < 2:
        return v_rows, np.full(len(v_rows), n - 1.0)
    v_cols = cols.var(axis=1, ddof=1) / m
    resid = y - rows[:, :, None] - cols[:, None, :] + grand[:, None, None]
    mse = (resid**2).sum(axis=(1, 2)) / ((n - 1) * (m - 1))
    v_prompts = np.maximum(v_cols - mse / (n * m), 0.0)
    var = v_rows + v_prompts
    denom = v_rows**2 / (n - 1) + v_prompts**2 / (m - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, var**2 / np.where(denom > 0, denom, 1.0), n - 1.0)
    return var, df


# "A higher"/"A lower": the interval excludes 0 on that side; "pending": a run is unfinished
Verdict = Literal["A higher", "A lower", "not shown", "not comparable", "pending"]


@dataclass(frozen=True)
class Comparison:
    """Run A minus run B, with the interval of the difference and what it decides.

    ``paired``: over the directions both runs share (same seeds, same prompts);
    otherwise Welch's t over each run's own directions. ``verdict`` names a side ("A
    higher", "A lower") only when the interval excludes 0.
    """

    verdict: Verdict
    difference: Interval | None
    paired: bool
    reason: str = ""

    def describe(self, digits: int = 1) -> str:
        """One cell: the verdict, the difference with its interval, and how it was made."""
        d = self.difference
        if d is None or d.low is None or d.high is None:
            return f"{self.verdict}: {self.reason}"
        return f"{self.verdict}: {self.difference_text(digits)}"

    def difference_text(self, digits: int = 1) -> str:
        """The difference with its interval and how it was made, without a verdict."""
        d = self.difference
        if d is None or d.low is None or d.high is None:
            return f"{self.verdict}: {self.reason}"
        span = f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
        how = (
            f"paired over {d.n} shared directions"
            if self.paired
            else f"unpaired (Welch t over {d.n} directions in all)"
        )
        detect = f"detects differences beyond ±{d.half_width:.{digits}f}"
        inside = " includes 0" if self.verdict == "not shown" else ""
        return f"A - B = {span}{inside}, {how}; {detect}"


def paired_difference(
    a: Sequence[float], b: Sequence[float], over: str = "directions"
) -> Comparison:
    """A - B over the same draws: a t-interval of the per-draw differences."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    interval = mean_interval(diffs, f"shared {over}")
    return _decide(interval, paired=True, n=len(diffs), over=over)


def welch_difference(
    a: Sequence[float], b: Sequence[float], over: str = "directions"
) -> Comparison:
    """A - B over different draws: Welch's t-interval of the difference of means."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    mean = float(x.mean() - y.mean()) if x.size and y.size else float("nan")
    if min(x.size, y.size) < MIN_DIRECTIONS:
        return Comparison(
            "not comparable", None, False,
            f"unpaired, and a run has fewer than {MIN_DIRECTIONS} {over} "
            f"({x.size} and {y.size}); give both more seeds",
        )  # fmt: skip
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    var = va + vb
    df = var**2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1)) if var > 0 else 1.0
    low, high = _t_bounds(mean, float(var), float(df))
    method = f"Welch t-interval over each run's own {over}"
    interval = Interval(mean, low, high, int(x.size + y.size), over, method)
    return _decide(interval, paired=False, n=x.size + y.size, over=over)


def _decide(interval: Interval | None, paired: bool, n: int, over: str) -> Comparison:
    if interval is None or interval.low is None or interval.high is None:
        return Comparison(
            "not comparable", interval, paired,
            f"{n} shared {over}, fewer than {MIN_DIRECTIONS}: no interval; give both runs "
            "the same, more seeds",
        )  # fmt: skip
    side: Verdict = "not shown"
    if interval.low > 0 or interval.high < 0:
        side = "A higher" if interval.low > 0 else "A lower"
    return Comparison(side, interval, paired)


Predicted = Literal["higher", "lower", "different", "same"]
Reading = Literal["supported", "contradicted", "not shown"]


def read_claim(interval: Interval | None, predicted: Predicted) -> Reading:
    """What the interval of A - B says of a claim that predicts its sign.

    ``higher``/``lower``: supported when the whole interval has that sign, contradicted
    when it has the other. ``different``: supported when it excludes 0, never
    contradicted. ``same`` (A keeps what B has): contradicted when it excludes 0, and
    never supported, since an interval holding 0 only bounds the difference by its
    width. An interval holding 0 is "not shown" either way, never "no difference", and
    so is a difference with no interval (too few draws).
    """
    if interval is None or interval.low is None or interval.high is None:
        return "not shown"
    sign = 1 if interval.low > 0 else -1 if interval.high < 0 else 0
    if sign == 0:
        return "not shown"
    if predicted in ("different", "same"):
        return "supported" if predicted == "different" else "contradicted"
    return "supported" if sign == (1 if predicted == "higher" else -1) else "contradicted"


def compare(
    a: Mapping[Hashable, float] | None,
    b: Mapping[Hashable, float] | None,
    same_prompts: bool = True,
) -> Comparison:
    """Run A against run B from their values by direction (key: the direction's identity).

    Paired over the shared directions when the runs share at least ``MIN_DIRECTIONS``
    and their prompts; otherwise unpaired (Welch) over all of each run's directions.
    None: a run is unfinished.
    """
    if a is None or b is None:
        return Comparison("pending", None, False, "a run is unfinished")
    shared = [k for k in a if k in b]
    if same_prompts and len(shared) >= MIN_DIRECTIONS:
        return paired_difference([a[k] for k in shared], [b[k] for k in shared])
    return welch_difference(list(a.values()), list(b.values()))
