"""Figures behind the coherence thresholds (``judging/coherence.py``): prints, asserts nothing.

Coherent text: the unperturbed models' own greedy answers where they do not refuse (the
aligned demo on 20 MT-Bench questions, the base model on AdvBench rows 0-19; two
one-point sweeps this script runs, 32 new tokens). Broken text: the non-refused answers
at the far ends (|alpha| = 0.3) of the aligned demo's paper landscapes (``make paper``
first). Between them, the answers of the landscapes' inner points (0 < |alpha| < 0.3):

    .venv/bin/python benchmarks/calibrate_coherence.py --store cache
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape_core.judging import coherence  # noqa: E402
from landscape_core.store.runs import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="cache")
    parser.add_argument(
        "--label", default="paper: aligned, seed", help="runs whose label starts so"
    )
    args = parser.parse_args()
    store = Store.open(args.store)
    coherent = [_own_answers(store, model, prompts) for model, prompts in (
        ({"kind": "bundled"}, {"source": "mt_bench", "limit": 20}),
        ({"kind": "bundled", "variant": "base"}, {"source": "advbench", "limit": 20}),
    )]  # fmt: skip
    runs = store.runs_frame()
    runs = runs[runs.label.str.startswith(args.label)]
    frames = [store.generations_frame(r) for r in runs.run_id]
    if not frames:
        raise SystemExit(f"no runs labelled {args.label!r} in {args.store}; run `make paper`")
    gens = pd.concat(frames).drop_duplicates(["point_key", "prompt_index"])
    gens = gens[(gens.refused == 0) & gens.coherence_nll.notna()]
    far = gens.alpha.abs().max()
    own = pd.concat(coherent)
    groups = {
        "own answers (unperturbed, not refused)": own[own.refused == 0],
        f"inner (0 < |alpha| < {far:g})": gens[(gens.alpha != 0) & (gens.alpha.abs() < far)],
        f"far (|alpha| = {far:g})": gens[gens.alpha.abs() == far],
    }
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
        broken = pd.Series(
            [coherence.state(False, r.text, r.coherence_nll, r.repetition) == "incoherent"
             for r in part.itertuples()], dtype=bool,
        )  # fmt: skip
        print(f"  {name}: {broken.mean():.0%} incoherent of {len(part)}")


def _own_answers(store: Store, model: dict, prompts: dict) -> pd.DataFrame:
    from landscape_core import sweep
    from landscape_core.spec.config import SweepSpec

    spec = SweepSpec.from_dict({
        "label": "calibration: own answers", "model": model, "prompts": prompts,
        "grid": [{"start": 0.0, "stop": 0.0, "num": 1}],
        "generation": {"max_new_tokens": 32},
    })  # fmt: skip
    return store.generations_frame(sweep.run(spec, store).run_id)


if __name__ == "__main__":
    main()
