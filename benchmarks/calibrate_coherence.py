"""Figures behind the coherence thresholds (``judging/coherence.py``): prints, asserts nothing.

For the aligned demo's paper landscapes in a store (``make paper`` first), it compares
the non-refused answers of the unperturbed model (alpha = 0) with those at the far
ends of the grid (|alpha| = the grid's largest), where perturbed models break:

    .venv/bin/python benchmarks/calibrate_coherence.py --store cache
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from landscape_core.judging import coherence
from landscape_core.store.runs import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="cache")
    parser.add_argument(
        "--label", default="paper: aligned, seed", help="runs whose label starts so"
    )
    args = parser.parse_args()
    store = Store.open(args.store)
    runs = store.runs_frame()
    runs = runs[runs.label.str.startswith(args.label)]
    frames = [store.generations_frame(r) for r in runs.run_id]
    if not frames:
        raise SystemExit(f"no runs labelled {args.label!r} in {args.store}; run `make paper`")
    gens = pd.concat(frames).drop_duplicates(["point_key", "prompt_index"])
    gens = gens[(gens.refused == 0) & gens.coherence_nll.notna()]
    far = gens.alpha.abs().max()
    groups = {"model (alpha = 0)": gens[gens.alpha == 0], f"far (|alpha| = {far:g})": gens[
        gens.alpha.abs() == far]}  # fmt: skip
    print(f"{len(runs)} runs, non-refused answers with coherence: {len(gens)}")
    quantiles = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    for name, part in groups.items():
        print(f"\n{name}: {len(part)} answers")
        for column in ("coherence_nll", "repetition"):
            q = np.quantile(part[column], quantiles) if len(part) else [np.nan] * 6
            cells = "  ".join(f"q{int(k * 100)}={v:.2f}" for k, v in zip(quantiles, q, strict=True))
            print(f"  {column:14s} {cells}")
    t = coherence.THRESHOLDS
    print(f"\nthresholds: max_nll={t.max_nll}, max_repetition={t.max_repetition}")
    for name, part in groups.items():
        broken = (part.coherence_nll > t.max_nll) | (part.repetition > t.max_repetition)
        print(f"  {name}: {broken.mean():.0%} incoherent of {len(part)}")


if __name__ == "__main__":
    main()
