"""Draw a stratified, blind sample of stored answers for human labelling (issue 29).

Answers are drawn evenly over (run, alpha band, state) cells, so that the basin's
edges and the rare states are not drowned by the many refusals at the model. Two files
are written:

- ``BLIND`` (``id, prompt, answer``): what a labeller sees, in a shuffled order, with no
  alpha, run or verdict;
- ``KEY`` (``id, run_id, run_label, point_key, prompt_index, alpha, band, state``): what the
  analysis joins the labels back to.

    .venv/bin/python benchmarks/label_sample.py --store STORE --n 300 \
        --blind /tmp/blind.csv --key /tmp/key.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape_core.readers.results import answer_states  # noqa: E402
from landscape_core.store.runs import Store  # noqa: E402

BANDS = (0.0, 0.1, 0.2, 0.3)  # |alpha| in (previous, this]: the model, inner, edge, far


def band(alpha: float) -> str:
    """The |alpha| band an answer falls in, by its upper bound."""
    for top in BANDS:
        if abs(alpha) <= top + 1e-9:
            return f"<={top:g}"
    return f">{BANDS[-1]:g}"


def answers(store: Store, label_prefix: str, run_ids: list[str]) -> pd.DataFrame:
    """Every scored answer of ``run_ids``, or of the runs whose label starts so."""
    runs = store.runs_frame()
    runs = runs[runs.run_id.isin(run_ids) if run_ids else
                runs.label.fillna("").str.startswith(label_prefix)]  # fmt: skip
    frames = []
    for run in runs.itertuples():
        gens = store.generations_frame(run.run_id)
        gens = gens.assign(state=answer_states(gens), run_id=run.run_id, run_label=run.label)
        frames.append(gens[gens.state.notna()])
    if not frames:
        raise SystemExit(f"no runs labelled {label_prefix!r}* with answers in {store.root}")
    out = pd.concat(frames).drop_duplicates(["point_key", "prompt_index"])
    return out.assign(band=out.alpha.map(band))


def stratified(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` answers spread as evenly as the cells allow over (run, band, state)."""
    rng = np.random.default_rng(seed)
    cells = [g.sample(frac=1.0, random_state=int(rng.integers(2**31))) for _, g in
             frame.groupby(["run_id", "band", "state"], sort=True)]  # fmt: skip
    taken: list[pd.DataFrame] = []
    left = n
    while left > 0 and cells:
        share = max(1, left // len(cells))
        cells.sort(key=len)
        keep = []
        for cell in cells:
            if left <= 0:
                break
            part, rest = cell.iloc[:share], cell.iloc[share:]
            taken.append(part)
            left -= len(part)
            if len(rest):
                keep.append(rest)
        cells = keep
    out = pd.concat(taken)
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--runs", default="", help="runs whose label starts so (all: '')")
    parser.add_argument("--run", action="append", default=[], help="a run id (repeatable)")
    parser.add_argument("--first-id", type=int, default=0, help="number ids from here")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blind", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    sample = stratified(answers(Store.open(args.store), args.runs, args.run), args.n, args.seed)
    sample.insert(0, "id", [f"a{args.first_id + i:03d}" for i in range(len(sample))])
    sample.rename(columns={"text": "answer"})[["id", "prompt", "answer"]].to_csv(
        args.blind, index=False
    )
    key = ["id", "run_id", "run_label", "point_key", "prompt_index", "alpha", "band", "state"]
    sample[key].to_csv(args.key, index=False)
    print(f"{len(sample)} answers from {sample.run_id.nunique()} runs")
    print(sample.groupby(["run_label", "band", "state"]).size().to_string())


if __name__ == "__main__":
    main()
