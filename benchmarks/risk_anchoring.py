"""Anchoring and shallowness of each validation dataset (issue 30), beside the lookahead.

Post hoc: these measures were built after the pre-registration, so the validation
reports them as exploratory, never as the pre-registered test. One row per (dataset,
seed) is appended to docs/risk-validation-anchoring.csv.

    PYTHONPATH=. .venv/bin/python benchmarks/risk_anchoring.py [--only p0 align] [--seeds 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from landscape_core.engine.models import load_model
from landscape_core.finetune import FinetuneSpec
from landscape_core.risk.anchoring import Gradients, anchoring
from landscape_core.risk.validation import ANCHORING, DATASETS, RESULTS, append_row, load, measured
from landscape_core.spec.config import ModelSpec
from landscape_core.spec.training_data import file_examples

ALIGNED = ModelSpec(kind="bundled", variant="aligned")
COLUMNS = ["dataset", "seed", "anchoring", "shallowness", "anchoring_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=Path(__file__).resolve().parents[1] / "cache")
    parser.add_argument("--only", nargs="*", default=None, help="default: every validated row")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    args = parser.parse_args()
    validated = load(RESULTS)
    names = args.only or list(dict.fromkeys(validated.dataset))
    done = measured(ANCHORING)
    loaded = load_model(ALIGNED, args.store / "models")
    for seed in args.seeds:
        # the validation's recipe (FinetuneSpec's defaults); the data do not enter the anchors
        recipe = FinetuneSpec(recipe="file", data=str(DATASETS / "p0.csv"), base=ALIGNED, seed=seed)
        started = time.monotonic()
        gradients = Gradients(loaded.model, loaded.tokenizer, "auto", recipe)
        print(f"seed {seed}: anchors in {time.monotonic() - started:.0f} s", flush=True)
        for name in names:
            if (name, seed) in done:
                continue
            path = DATASETS / f"{name}.csv"
            started = time.monotonic()
            out = anchoring(gradients, file_examples(path))
            row = {"dataset": name, "seed": seed, "anchoring": round(out.score, 5),
                   "shallowness": round(out.shallowness, 4),
                   "anchoring_seconds": round(time.monotonic() - started, 1)}  # fmt: skip
            append_row(ANCHORING, row, COLUMNS)
            print(row, flush=True)


if __name__ == "__main__":
    main()
