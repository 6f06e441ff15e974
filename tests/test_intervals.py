"""The intervals' coverage, shown by simulation, and the paired comparisons' verdicts.

The simulated landscape: prompt p's contribution along direction d is the safe share
of k = 7 basin points, each refused with probability sigmoid(mu + a_d + b_p + e_dp)
(direction, prompt and interaction effects, Gaussian on the logit scale). Its true
mean over both populations is a one-dimensional integral (Gauss-Hermite). The sizes
are the paper's: 5 and 10 directions, 20 and 80 prompts. 4,000 replications give a
Monte-Carlo standard error of 0.34 points at 95%, so +-2 points is 6 of them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from landscape_core.basin import intervals

REPLICATIONS = 4_000
K_POINTS = 7  # basin points per direction, as along the aligned demo's seeds
MU, SD_DIRECTION, SD_PROMPT, SD_INTERACTION = 1.0, 0.5, 1.5, 1.0
SIZES = [(5, 20), (5, 80), (10, 20), (10, 80)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _expected_safe(centre: np.ndarray | float, sd: float) -> np.ndarray:
    """100 E[sigmoid(centre + sd Z)], Z standard normal, by 60-point Gauss-Hermite."""
    z, w = np.polynomial.hermite_e.hermegauss(60)
    centre = np.asarray(centre, dtype=float)[..., None]
    return 100.0 * (_sigmoid(centre + sd * z) * w).sum(-1) / w.sum()


def _landscapes(
    rng: np.random.Generator,
    n: int,
    m: int,
    prompts: np.ndarray | None = None,
    sd_direction: float = SD_DIRECTION,
    k: int = K_POINTS,
):
    """REPLICATIONS matrices (R, n, m) of per-prompt contributions, and prompt effects."""
    b = rng.normal(0, SD_PROMPT, (REPLICATIONS, 1, m)) if prompts is None else prompts
    logit = (
        MU
        + rng.normal(0, sd_direction, (REPLICATIONS, n, 1))
        + b
        + rng.normal(0, SD_INTERACTION, (REPLICATIONS, n, m))
    )
    return 100.0 * rng.binomial(k, _sigmoid(logit)) / k, b


def _coverage(y: np.ndarray, truth: float | np.ndarray) -> float:
    """Share of the stacked matrices (R, n, m) whose interval holds the truth.

    The library's own variance and half-width, vectorised over replications; a few
    are checked against ``crossed_interval`` itself, which calls the same two.
    """
    var, df = intervals.crossed_variance(y)
    half = intervals.t_half_width(var, df)
    means = y.mean(axis=(1, 2))
    for one, mean, h in zip(y[:3], means, half, strict=False):
        single = intervals.crossed_interval(one)
        assert (single.low, single.high) == pytest.approx((mean - h, mean + h))
    return float(np.mean(np.abs(means - truth) <= half))


@pytest.mark.parametrize("n, m", SIZES)
def test_the_t_interval_over_directions_covers_95_percent_with_prompts_fixed(n, m):
    """Prompts fixed: the truth is the mean over directions for these prompts."""
    rng = np.random.default_rng(29_000 + 10 * n + m)
    prompts = rng.normal(0, SD_PROMPT, (1, 1, m))
    y, _ = _landscapes(rng, n, m, prompts)
    sd = float(np.hypot(SD_DIRECTION, SD_INTERACTION))
    truth = float(_expected_safe(MU + prompts[0, 0], sd).mean())
    covered = _coverage(y.mean(axis=2, keepdims=True), truth)  # one value per direction
    assert abs(covered - 0.95) <= 0.02, covered


@pytest.mark.parametrize("n, m", SIZES)
def test_the_crossed_interval_covers_95_percent_when_directions_and_prompts_vary(n, m):
    rng = np.random.default_rng(29_100 + 10 * n + m)
    y, _ = _landscapes(rng, n, m)
    sd = float(np.sqrt(SD_DIRECTION**2 + SD_PROMPT**2 + SD_INTERACTION**2))
    truth = float(_expected_safe(MU, sd))
    covered = _coverage(y, truth)
    assert abs(covered - 0.95) <= 0.02, covered


@pytest.mark.parametrize("sd_sets, sets, low, high", [(0.5, 5, 0.93, 0.97), (3.0, 5, 0.90, 0.935),
                                                     (3.0, 10, 0.93, 0.97)])  # fmt: skip
def test_the_defences_interval_at_its_size_covers_less_when_its_draws_differ_widely(
    sd_sets, sets, low, high
):
    """Section 6's shape: member sets x 60 goals, one defended answer per goal.

    With draws that differ little it covers 95% +-2 at 5 sets. With draws as far apart as
    the paper run's (defended ASR 0 to 97 over 5 sets: a logit SD near 3) it covers about
    92% at 5 and about 95% at 10, which is why section 6 draws its members 10 times.
    """
    rng = np.random.default_rng(29_300 + sets + int(10 * sd_sets))
    y, _ = _landscapes(rng, sets, 60, sd_direction=sd_sets, k=1)
    sd = float(np.sqrt(sd_sets**2 + SD_PROMPT**2 + SD_INTERACTION**2))
    covered = _coverage(y, float(_expected_safe(MU, sd)))
    assert low <= covered <= high, covered


def test_the_t_interval_over_directions_undercovers_when_prompts_vary():
    """Why the crossed interval exists: prompts' own noise is real where they are a sample."""
    rng = np.random.default_rng(29_200)
    y, _ = _landscapes(rng, 10, 20)
    truth = float(_expected_safe(MU, np.sqrt(SD_DIRECTION**2 + SD_PROMPT**2 + SD_INTERACTION**2)))
    assert _coverage(y.mean(axis=2, keepdims=True), truth) < 0.90


def test_fewer_than_five_directions_give_the_values_and_no_interval():
    interval = intervals.mean_interval([68.1, 70.0, 82.5])
    assert interval.low is None and interval.high is None
    assert interval.values == (68.1, 70.0, 82.5)
    assert "68.1, 70.0, 82.5" in interval.describe() and "no interval" in interval.describe()
    assert intervals.crossed_interval(np.ones((4, 20))).low is None


def test_the_t_interval_matches_the_textbook_one():
    """The aligned demo's five VISAGE values (issue 29: the t-interval is [65.2, 94.4])."""
    values = [79.8 + d for d in (-11.0, -9.9, 2.7, 14.0, 4.2)]
    interval = intervals.mean_interval(values)
    half = 2.7764451 * np.std(values, ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert interval.low == pytest.approx(np.mean(values) - half)
    assert interval.high == pytest.approx(np.mean(values) + half)
    assert interval.half_width == pytest.approx(half)
    assert interval.resamples == "directions" and "t-interval over directions" in interval.method


def test_constant_single_and_no_values():
    assert intervals.mean_interval([5.0] * 5) == intervals.Interval(
        5.0, 5.0, 5.0, 5, values=(5.0,) * 5
    )
    assert intervals.mean_interval([5.0]).low is None
    assert intervals.mean_interval([]) is None


def test_the_crossed_interval_of_one_prompt_is_the_t_interval():
    values = np.array([[60.0], [70.0], [65.0], [90.0], [75.0]])
    crossed, plain = intervals.crossed_interval(values), intervals.mean_interval(values[:, 0])
    assert (crossed.low, crossed.high) == pytest.approx((plain.low, plain.high))
    assert crossed.resamples == "directions and prompts"


def test_a_paired_difference_is_supported_where_unpaired_intervals_overlap():
    """Directions move both runs alike: the pairing removes that shared spread."""
    a = [60.0, 70.0, 80.0, 90.0, 75.0]
    b = [v - 5.0 + e for v, e in zip(a, (0.5, -0.5, 0.3, -0.2, 0.1), strict=True)]
    ia, ib = intervals.mean_interval(a), intervals.mean_interval(b)
    assert ia.low <= ib.high and ib.low <= ia.high  # the old rule: "no difference"
    result = intervals.compare(dict(enumerate(a)), dict(enumerate(b)))
    assert result.paired and result.verdict == "A higher"
    assert result.describe().startswith("A higher: A - B = +")
    flipped = intervals.compare(dict(enumerate(b)), dict(enumerate(a)))
    assert flipped.verdict == "A lower" and flipped.describe().startswith("A lower: A - B = -")


def test_an_interval_holding_zero_is_not_shown_never_no_difference():
    a = {k: v for k, v in enumerate([60.0, 70.0, 80.0, 90.0, 75.0])}
    b = {k: v for k, v in enumerate([62.0, 66.0, 83.0, 88.0, 76.0])}
    result = intervals.compare(a, b)
    assert result.verdict == "not shown"
    text = result.describe()
    assert "no difference" not in text and text.startswith("not shown")
    assert "detects differences beyond ±" in text


def test_runs_without_shared_directions_are_compared_unpaired_by_welch():
    a = {("seed", k): v for k, v in enumerate([60.0, 70.0, 80.0, 90.0, 75.0])}
    b = {("other", k): v for k, v in enumerate([20.0, 30.0, 25.0, 35.0, 28.0])}
    result = intervals.compare(a, b)
    assert not result.paired and result.verdict == "A higher"
    assert "unpaired (Welch" in result.describe()
    few = intervals.compare(a, {("other", 0): 1.0, ("other", 1): 2.0})
    assert few.verdict == "not comparable" and "unpaired" in few.describe()


def test_different_prompts_are_never_paired():
    a = dict(enumerate([60.0, 70.0, 80.0, 90.0, 75.0]))
    assert not intervals.compare(a, a, same_prompts=False).paired


def test_an_unfinished_or_small_run_is_not_comparable():
    assert intervals.compare(None, {0: 1.0}).verdict == "pending"
    small = intervals.compare({0: 1.0, 1: 2.0}, {0: 3.0, 1: 4.0})
    assert small.verdict == "not comparable"


def test_mean_interval_is_the_one_column_crossed_interval():
    values = [60.0, 70.0, 65.0, 90.0, 75.0, 81.0]
    plain = intervals.mean_interval(values)
    var, df = intervals.crossed_variance(np.asarray(values)[None, :, None])
    assert df[0] == 5 and var[0] == pytest.approx(np.var(values, ddof=1) / 6)
    assert plain.half_width == pytest.approx(float(intervals.t_half_width(var[0], df[0])))


def test_a_claim_is_read_off_the_sign_of_its_whole_interval():
    above, across, below = (intervals.Interval(m, lo, hi, 10) for m, lo, hi in
                            [(1.0, 0.5, 1.5), (0.1, -0.5, 0.7), (-1.0, -1.5, -0.5)])  # fmt: skip
    read = intervals.read_claim
    assert [read(above, p) for p in ("higher", "lower", "different", "same")] == [
        "supported", "contradicted", "supported", "contradicted"]  # fmt: skip
    assert [read(below, p) for p in ("higher", "lower")] == ["contradicted", "supported"]
    assert {read(across, p) for p in ("higher", "lower", "different", "same")} == {"not shown"}
    assert read(intervals.Interval(1.0, None, None, 3), "higher") == "not shown"  # no interval
    assert read(None, "lower") == "not shown"


@given(st.floats(-100, 100), st.floats(0, 100))
def test_a_claim_that_nothing_changes_is_never_supported(low, width):
    interval = intervals.Interval(low + width / 2, low, low + width, 10)
    assert intervals.read_claim(interval, "same") in ("not shown", "contradicted")
