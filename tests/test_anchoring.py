"""Issue 30: the anchoring and shallowness measures, on the tiny model."""

from __future__ import annotations

import torch

from landscape_core.finetune import FinetuneSpec
from landscape_core.risk.anchoring import SHALLOW, Gradients, anchoring, anchors
from landscape_core.spec.training_data import Example


def _recipe(tiny_model_dir) -> FinetuneSpec:
    base = {"kind": "local", "path": str(tiny_model_dir)}
    return FinetuneSpec.from_dict(
        {"recipe": "harmful", "shots": 1, "max_length": 512, "base": base}
    )


def test_compliant_rows_pull_toward_compliance_and_lead_the_top_rows(tiny_loaded, tiny_model_dir):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    before = [p.detach().clone() for p in model.parameters()]
    compliant, refused = anchors()
    mixed = [refused[0], compliant[0], refused[1], compliant[1]]
    out = anchoring(Gradients(model, tokenizer, "auto", _recipe(tiny_model_dir)), mixed)
    assert out.per_example[1] > out.per_example[0] and out.per_example[3] > out.per_example[2]
    assert sorted(out.top(2)) == [1, 3]  # the rows a user would remove
    assert out.score == sum(out.per_example) / 4
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_short_answers_are_all_shallow_and_long_ones_less(tiny_loaded, tiny_model_dir):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    gradients = Gradients(model, tokenizer, "auto", _recipe(tiny_model_dir))
    short = [Example("Say hi", "Hi")]  # fewer answer tokens than SHALLOW, EOS included
    assert len(tokenizer("Hi" + tokenizer.eos_token, add_special_tokens=False).input_ids) <= SHALLOW
    assert abs(anchoring(gradients, short).shallowness - 1.0) < 1e-4
    long = [Example("Tell a story", "Once upon a time there was a small robot " * 6)]
    assert anchoring(gradients, long).shallowness < 0.9
