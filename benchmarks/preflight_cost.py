"""Where a risk preflight's time goes, against the finetune it predicts (issue 30).

One dataset, one recipe, the real model, all in one run so the ratios compare like with
like. Prints the time of each part of ``risk DATA``: the model's reference built fresh
and read back from a store, the k steps measured at step k only (the default) and at
every step (the validation's trajectory), and anchoring, against the finetune's training
steps (the lookahead's estimate: its mean step time times the recipe's steps, the
figure ``risk`` prints; the validation's CSV has whole finetune calls).

    .venv/bin/python benchmarks/preflight_cost.py [--data docs/risk-validation/p0.1.csv]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from landscape_core.engine.models import load_model
from landscape_core.finetune import FinetuneSpec
from landscape_core.risk.anchoring import Gradients, anchoring
from landscape_core.risk.lookahead import Reference, lookahead
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
    probes = Probes()
    loaded, load_s = timed(load_model, ALIGNED, Store.open(args.store).models_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    examples = file_examples(args.data)
    recipe = FinetuneSpec(recipe="file", data=str(args.data.resolve()), base=ALIGNED)
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / "reference.json"
        fresh, fresh_s = timed(Reference.cached, model, tokenizer, "auto", probes, kept)
        _, kept_s = timed(Reference.cached, model, tokenizer, "auto", probes, kept)
    last, last_s = timed(lookahead, model, tokenizer, "auto", recipe, examples, probes, fresh)
    every, every_s = timed(lookahead, model, tokenizer, "auto", recipe, examples, probes,
                           fresh, every_step=True)  # fmt: skip
    assert every.score == last.score, "step k's measures do not depend on the steps between"
    gradients, anchors_s = timed(Gradients, model, tokenizer, "auto", recipe)
    _, rows_s = timed(anchoring, gradients, examples)
    steps = recipe.epochs * -(-len(examples) // recipe.batch_size)
    print(
        f"data: {args.data.name}, {len(examples)} examples, {steps} optimizer steps "
        f"({recipe.epochs} epochs of {recipe.batch_size}); k = {probes.steps}"
    )
    print(f"model load                          {load_s:7.1f} s")
    print(f"reference, built                    {fresh_s:7.1f} s  (first preflight of a model)")
    print(f"reference, kept (logits rebuilt)    {kept_s:7.1f} s  (every later one)")
    print(f"lookahead, step k measured          {last_s:7.1f} s  (the default)")
    print(f"lookahead, every step measured      {every_s:7.1f} s  (the validation's rows)")
    print(f"anchoring: the anchors' gradients   {anchors_s:7.1f} s")
    print(f"anchoring: one gradient per row     {rows_s:7.1f} s")
    train = last.finetune_estimate
    print(f"finetune, estimated training steps  {train:7.1f} s")
    before = fresh_s + every_s + anchors_s + rows_s  # last round's preflight, as it ran
    now = kept_s + last_s + anchors_s + rows_s
    bare = kept_s + last_s
    for name, seconds in (("last round's preflight", before), ("preflight, kept reference", now),
                          ("  of it without anchoring", bare)):  # fmt: skip
        print(f"{name:<34} {seconds:7.1f} s = {seconds / train:.2f}x the training steps")
    per_row = rows_s / len(examples)
    per_step = train / steps
    print(
        f"anchoring per row {per_row:.2f} s against a training step's {per_step:.2f} s per "
        f"{recipe.batch_size} rows: over all rows it alone costs "
        f"{per_row * recipe.batch_size / per_step / recipe.epochs:.2f}x the training steps"
    )


if __name__ == "__main__":
    main()
