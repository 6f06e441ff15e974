"""How fast is the refusal-likelihood preview, and how closely does it track keyword ASR?

Runs a preview config and the same grid measuring answers (keyword judge, answers
stopped at the verdict), then prints the preview's wall time and the rank (Spearman)
and linear (Pearson) correlations over grid points between keyword ASR and the
preview's ASR, 100 * (1 - mean P(refusal opening)).

    python benchmarks/preview_correlation.py [--config configs/preview-2d.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from landscape_core import sweep
    from landscape_core.spec.config import GenerationSpec, SweepSpec
    from landscape_core.store.runs import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/preview-2d.yaml")
    parser.add_argument("--store", type=Path, default=ROOT / "cache")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    store = Store.open(args.store)
    preview = SweepSpec.from_yaml(args.config)
    answers = dataclasses.replace(
        preview,
        measure="answers",
        generation=GenerationSpec(max_new_tokens=args.max_new_tokens, stop="verdict"),
        label=f"{preview.label} answers",
    )
    t0 = time.monotonic()
    fast = sweep.run(preview, store)
    preview_s = time.monotonic() - t0
    t0 = time.monotonic()
    slow = sweep.run(answers, store)
    answers_s = time.monotonic() - t0
    p = store.measures_frame(fast.run_id).groupby("idx").p_refusal.mean()
    asr = store.points_frame(slow.run_id).set_index("idx").asr
    both = (100.0 * (1.0 - p)).rename("preview").to_frame().join(asr, how="inner")
    spearman = both.preview.rank().corr(both.asr.rank())
    pearson = both.preview.corr(both.asr)
    print(f"preview: {fast.computed} point(s) computed in {preview_s:.1f} s (run {fast.run_id})")
    print(f"answers: {slow.computed} point(s) computed in {answers_s:.1f} s (run {slow.run_id})")
    print(f"points={len(both)} spearman={spearman:.3f} pearson={pearson:.3f}")


if __name__ == "__main__":
    main()
