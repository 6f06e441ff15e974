"""Simulated coverage of 95% intervals over directions: old methods against new. Prints only.

The landscape model of ``tests/test_intervals.py`` (prompt p's contribution along direction
d: the safe share of 7 basin points, refused with probability sigmoid(mu + a_d + b_p +
e_dp)), at the paper's sizes. Methods:

- old: percentile bootstrap over the per-direction values (the project's interval before
  issue 29), 2,000 resamples;
- two-level percentile: directions and prompts resampled together, 2,000 resamples;
- t over directions (``stats.mean_interval``) and the crossed t-interval
  (``stats.crossed_interval``).

"prompts fixed": the truth is the mean over directions for one fixed prompt set;
"both vary": the mean over both populations.

    .venv/bin/python benchmarks/interval_coverage.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_stats import (  # noqa: E402
    MU,
    SD_DIRECTION,
    SD_INTERACTION,
    SD_PROMPT,
    _expected_safe,
    _landscapes,
)

from landscape_core.readers import stats  # noqa: E402

RESAMPLES = 2_000


def percentile_cover(y: np.ndarray, truth: float, rng: np.random.Generator, both: bool) -> float:
    """Percentile bootstrap over directions (and prompts when ``both``), per replication."""
    hits = 0
    n, m = y.shape[1:]
    for one in y:
        rows = rng.integers(0, n, (RESAMPLES, n))
        if both:
            cols = rng.integers(0, m, (RESAMPLES, m))
            picked = one[rows[:, :, None], cols[:, None, :]]
            means = picked.mean(axis=(1, 2))
        else:
            means = one.mean(axis=1)[rows].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        hits += low <= truth <= high
    return hits / len(y)


def t_cover(y: np.ndarray, truth: float) -> float:
    var, df = stats.crossed_variance(y)
    return float(np.mean(np.abs(y.mean(axis=(1, 2)) - truth) <= stats.t_half_width(var, df)))


def main() -> None:
    rng = np.random.default_rng(0)
    sd_all = float(np.sqrt(SD_DIRECTION**2 + SD_PROMPT**2 + SD_INTERACTION**2))
    sd_within = float(np.hypot(SD_DIRECTION, SD_INTERACTION))
    print("| directions | prompts | case | old percentile | two-level percentile | t over "
          "directions | crossed t |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for n, m in [(5, 20), (5, 80), (10, 20), (10, 80)]:
        prompts = rng.normal(0, SD_PROMPT, (1, 1, m))
        fixed, _ = _landscapes(rng, n, m, prompts)
        truth = float(_expected_safe(MU + prompts[0, 0], sd_within).mean())
        rows = fixed.mean(axis=2, keepdims=True)
        small = fixed[:1000]  # the bootstraps loop; 1,000 replications: +-0.7 points (1 SE)
        print(f"| {n} | {m} | prompts fixed | {percentile_cover(small, truth, rng, False):.3f} | "
              f"- | {t_cover(rows, truth):.3f} | - |")  # fmt: skip
        vary, _ = _landscapes(rng, n, m)
        truth = float(_expected_safe(MU, sd_all))
        small = vary[:1000]
        print(f"| {n} | {m} | both vary | {percentile_cover(small, truth, rng, False):.3f} | "
              f"{percentile_cover(small, truth, rng, True):.3f} | "
              f"{t_cover(vary.mean(axis=2, keepdims=True), truth):.3f} | "
              f"{t_cover(vary, truth):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
