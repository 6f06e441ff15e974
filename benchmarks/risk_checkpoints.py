"""The keyword ASR averaged over each validation finetune's checkpoints (issue 30).

A finetune's last checkpoint is one draw from a noisy path: the paper miniature's mix
swung between 3.8 and 98.8 across its checkpoints. The mean over up to 5 checkpoints,
nearest each fifth of training, reads the whole path, so it also counts how early a
finetune breaks. It was added after the data, so ``risk.validation`` reports it as post
hoc, never as the test. One row per (dataset, seed) is appended to
docs/risk-validation-checkpoints.csv.

    PYTHONPATH=. .venv/bin/python benchmarks/risk_checkpoints.py --store /work/riskstore \\
        [--count 5] [--only p0 align] [--seeds 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from risk_validation import asr  # the validation's own outcome run, per checkpoint

from landscape_core.plan.checkpoints import evenly, read_checkpoints
from landscape_core.risk.validation import (
    CHECKPOINT_ASR,
    RESULTS,
    STEADY,
    append_row,
    load,
    measured,
)
from landscape_core.store.runs import Store

COLUMNS = ["dataset", "seed", "steps", STEADY, "asr_refusal_v2_checkpoints", "seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, required=True, help="the validation's store")
    parser.add_argument("--count", type=int, default=5, help="checkpoints per finetune")
    parser.add_argument("--only", nargs="*", default=None, help="default: every validated row")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="default: all")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    store = Store.open(args.store)
    done = measured(CHECKPOINT_ASR)
    for row in load(RESULTS).itertuples():
        if (row.dataset, row.seed) in done or (args.only and row.dataset not in args.only):
            continue
        if args.seeds is not None and row.seed not in args.seeds:
            continue
        started = time.monotonic()
        chosen = evenly(read_checkpoints(store.models_dir / row.adapter), args.count)
        outcomes = [asr(Path(c.path), store) for c in chosen]
        keyword = [o["asr_keyword"] for o in outcomes]
        if keyword[-1] != row.asr_keyword:  # the last checkpoint holds the finished weights
            print(f"warning: {row.dataset} seed {row.seed}: last checkpoint {keyword[-1]} "
                  f"against the recorded {row.asr_keyword}", flush=True)  # fmt: skip
        out = {
            "dataset": row.dataset, "seed": row.seed,
            "steps": ";".join(f"{c.step}:{k:g}" for c, k in zip(chosen, keyword, strict=True)),
            STEADY: round(sum(keyword) / len(keyword), 2),
            "asr_refusal_v2_checkpoints":
                round(sum(o["asr_refusal_v2"] for o in outcomes) / len(outcomes), 2),
            "seconds": round(time.monotonic() - started, 1),
        }  # fmt: skip
        append_row(CHECKPOINT_ASR, out, COLUMNS)
        print(out, flush=True)


if __name__ == "__main__":
    main()
