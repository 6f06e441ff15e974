"""How often the risk validation's Spearman interval covers the true rho (issue 30).

The validation reports Spearman rho with a 95% percentile bootstrap over datasets
(``risk.validation.correlation``). This draws datasets from a bivariate normal with a
known rank correlation, n at a time, and counts how often that interval covers it.

    PYTHONPATH=. .venv/bin/python benchmarks/rho_coverage.py [--sims 1000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from landscape_core.risk import validation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    validation.RESAMPLES = args.resamples  # fewer than the report's 10,000: a coverage check
    rng = np.random.default_rng(0)
    print("n   true rho  coverage of the 95% percentile bootstrap  (sims)")
    for n in (8, 12, 20):
        for r in (0.0, 0.6, 0.9):
            true = 6 / math.pi * math.asin(r / 2)  # Spearman's rho of a bivariate normal
            hits = 0
            for sim in range(args.sims):
                x = rng.standard_normal(n)
                y = r * x + math.sqrt(1 - r * r) * rng.standard_normal(n)
                frame = pd.DataFrame({"score": x, validation.OUTCOME: y})
                c = validation.correlation(frame, "score", seed=sim)
                hits += c.low is not None and c.low <= true <= c.high
            print(f"{n:<3} {true:<9.2f} {hits / args.sims:.3f}  ({args.sims})", flush=True)


if __name__ == "__main__":
    main()
