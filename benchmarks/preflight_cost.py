"""Where a risk preflight's time goes, against the finetune it predicts (issue 30).

One dataset, one recipe, the real model, all in one run so the ratios compare like with
like. Prints the time of each part of ``risk DATA``: the model's reference built fresh
and read back from a store, the initial loss, the k steps measured at step k only (the
default) and at every step (the validation's trajectory), and anchoring, against the
finetune's training steps (the lookahead's estimate: its mean step time times the
recipe's steps, the figure ``risk`` prints; the validation's CSV has whole finetune
calls). Then, from the per-row costs, the data size from which the preflight, with its
default cap on the rows it reads, costs a tenth of the training or less.

    .venv/bin/python benchmarks/preflight_cost.py [--data docs/risk-validation/p0.1.csv]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from landscape_core.engine.models import load_model
from landscape_core.finetune import FinetuneSpec
from landscape_core.risk.anchoring import Gradients, anchoring
from landscape_core.risk.lookahead import Reference, initial_loss, lookahead
from landscape_core.risk.spec import Probes
from landscape_core.spec.config import ModelSpec
from landscape_core.spec.training_data import file_examples
from landscape_core.store.runs import Store

ROOT = Path(__file__).resolve().parents[1]
ALIGNED = ModelSpec(kind="bundled", variant="aligned")


def timed(what, *args, **kwargs):  # noqa: ANN001, ANN201
    started = time.monotonic()
    out = what(*args, **kwargs)
    return out, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT / "docs/risk-validation/p0.1.csv")
    parser.add_argument("--store", type=Path, default=ROOT / "cache")
    args = parser.parse_args()
    probes = Probes(rows=0)  # every row: the per-row costs are measured on all of them
    loaded, load_s = timed(load_model, ALIGNED, Store.open(args.store).models_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    examples = file_examples(args.data)
    n = len(examples)
    recipe = FinetuneSpec(recipe="file", data=str(args.data.resolve()), base=ALIGNED)
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / "reference.json"
        fresh, fresh_s = timed(Reference.cached, model, tokenizer, "auto", probes, kept)
        _, kept_s = timed(Reference.cached, model, tokenizer, "auto", probes, kept)
    _, loss_s = timed(initial_loss, model, tokenizer, "auto", examples, recipe.max_length,
                      recipe.batch_size)  # fmt: skip
    last, last_s = timed(lookahead, model, tokenizer, "auto", recipe, examples, probes, fresh)
    every, every_s = timed(lookahead, model, tokenizer, "auto", recipe, examples, probes,
                           fresh, every_step=True)  # fmt: skip
    assert every.score == last.score, "step k's measures do not depend on the steps between"
    # (exactly, on the CPU; CUDA's kernels need not be deterministic)
    gradients, anchors_s = timed(Gradients, model, tokenizer, "auto", recipe)
    _, rows_s = timed(anchoring, gradients, examples)
    steps = recipe.epochs * math.ceil(n / recipe.batch_size)
    train = last.finetune_estimate
    print(f"data: {args.data.name}, {n} examples, {steps} optimizer steps "
          f"({recipe.epochs} epochs of {recipe.batch_size}); k = {probes.steps}")  # fmt: skip
    for name, seconds in (
        ("model load", load_s),
        ("reference, built (a model's first)", fresh_s),
        ("reference, kept (logits rebuilt)", kept_s),
        ("initial loss, every row", loss_s),
        ("lookahead, step k measured", last_s),
        ("lookahead, every step measured", every_s),
        ("anchoring: the anchors' gradients", anchors_s),
        ("anchoring: one gradient per row", rows_s),
        ("finetune: its training steps (est.)", train),
    ):
        print(f"{name:<38} {seconds:7.1f} s")
    # last round's preflight, less the original model's passes it re-ran at every step
    before = fresh_s + every_s + anchors_s + rows_s
    now = kept_s + last_s + anchors_s + rows_s
    for name, seconds in (
        ("last round's preflight (at least)", before),
        ("preflight now, every row read", now),
        ("  of it, fixed (no per-row part)", now - loss_s - rows_s),
    ):
        print(f"{name:<38} {seconds:7.1f} s = {seconds / train:.2f}x the training steps")
    per_row = (loss_s + rows_s) / n  # the initial loss and anchoring, per row read
    per_step = train / steps
    fixed = now - loss_s - rows_s
    cap = Probes().rows

    def ratio(size: int) -> float:
        training = per_step * recipe.epochs * math.ceil(size / recipe.batch_size)
        return (fixed + per_row * min(size, cap)) / training

    every_row = per_row * recipe.batch_size / (per_step * recipe.epochs)
    tenth = next((size for size in range(1, 200_001) if ratio(size) <= 0.1), None)
    print(f"per row read: {per_row:.2f} s (initial loss and anchoring); per training step "
          f"of {recipe.batch_size} rows: {per_step:.2f} s. Reading every row costs "
          f"{every_row:.2f}x the training steps at any size; with the default cap of {cap} "
          f"rows the preflight is {ratio(n):.2f}x at {n} rows, {ratio(1000):.2f}x at 1,000 "
          f"and a tenth or less from {tenth or 'beyond 200,000'} rows")  # fmt: skip


if __name__ == "__main__":
    main()
