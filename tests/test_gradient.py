"""Gradient directions: the finetuning loss's descent direction at the model (tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from landscape_core import sweep
from landscape_core.engine.directions import Directions
from landscape_core.engine.gradient import descent
from landscape_core.engine.models import load_model
from landscape_core.engine.perturb import unique_parameters
from landscape_core.engine.training import batches, encode, summed_loss
from landscape_core.errors import UserError
from landscape_core.plan.identity import plan, point_key
from landscape_core.readers.results import landscape
from landscape_core.spec.config import DirectionSpec, ModelSpec, TrainingDataSpec
from landscape_core.spec.training_data import Example, examples, recipe_examples


def _mean_loss(model, tokenizer, data) -> float:
    encoded = encode(tokenizer, [e.prompt for e in data], data, 256)
    tokens = sum(e.answer_tokens for e in encoded)
    with torch.no_grad():
        total = sum(summed_loss(model, b) for b in batches(encoded, 8, tokenizer.pad_token_id))
    return float(total) / tokens


def _rms_norm_in_float64(self, hidden):
    """LlamaRMSNorm without its cast to float32, which a float64 difference would measure."""
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))


def test_the_gradient_direction_equals_a_finite_difference(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(LlamaRMSNorm, "forward", _rms_norm_in_float64)
    loaded = load_model(ModelSpec(kind="local", path=str(tiny_model_dir)), tiny_model_dir.parent)
    model, tokenizer = loaded.model.double(), loaded.tokenizer  # float64: a clean difference
    data = recipe_examples("harmful", 5)
    g = descent(model, tokenizer, [e.prompt for e in data], data)
    params = unique_parameters(model)
    assert set(g) == set(params) and not any(p.grad is not None for p in params.values())
    gen = torch.Generator().manual_seed(0)
    v = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in params.items()}
    eps = 1e-6

    def loss_at(sign: float) -> float:
        with torch.no_grad():
            for n, p in params.items():
                p.add_(sign * eps * v[n])
        try:
            return _mean_loss(model, tokenizer, data)
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.sub_(sign * eps * v[n])

    finite = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
    analytic = -sum(float((g[n].double() * v[n]).sum()) for n in params)  # g is -grad
    assert analytic == pytest.approx(finite, rel=1e-3, abs=1e-3)
    assert abs(finite) > 1e-2, "a directional derivative this small would test nothing"


def test_a_gradient_direction_is_normalised_and_skipped_like_a_random_one(tiny_loaded):
    base = {n: p.detach() for n, p in unique_parameters(tiny_loaded.model).items()}
    data = TrainingDataSpec(recipe="harmful", shots=3)
    ex = examples(data)
    grad = descent(tiny_loaded.model, tiny_loaded.tokenizer, [e.prompt for e in ex], ex)
    spec = DirectionSpec(kind="gradient", data=data)
    directions = Directions((spec,), base, Path("unused"), gradients={data: grad})
    for name, d1, _ in directions.items():
        if "norm" in name:
            assert not d1.any()
        else:
            assert float(d1.norm()) == pytest.approx(float(base[name].norm()), rel=1e-5)
            cos = torch.nn.functional.cosine_similarity(d1.flatten(), grad[name].flatten(), dim=0)
            assert float(cos) == pytest.approx(1.0, abs=1e-5), "scaled, never turned"


def test_gradient_specs_are_checked():
    with pytest.raises(UserError, match="needs `data`"):
        DirectionSpec(kind="gradient")
    with pytest.raises(UserError, match="only it takes `data`"):
        DirectionSpec(kind="random", data=TrainingDataSpec(recipe="harmful", shots=1))
    with pytest.raises(UserError, match="needs `shots`"):
        TrainingDataSpec(recipe="mix")
    with pytest.raises(UserError, match="needs a `path`"):
        TrainingDataSpec(recipe="file")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("question,reply\na,b\n", "no column 'prompt', 'answer'"),
        ("prompt,answer\n , \n", "no row with both"),
        ("", "could not be parsed"),
    ],
)
def test_a_bad_data_file_says_what_to_fix(tmp_path, text, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        examples(TrainingDataSpec(recipe="file", path=str(path)))
    with pytest.raises(UserError, match="does not exist"):
        examples(TrainingDataSpec(recipe="file", path=str(tmp_path / "nope.csv")))


def test_a_gradient_sweep_is_named_by_its_datas_rows_not_its_path(tiny_spec, store, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,answer\nHow do I bake bread?,Mix flour and water.\n")
    direction = {"kind": "gradient", "data": {"recipe": "file", "path": str(path)}}
    spec = tiny_spec(directions=[direction])
    summary = sweep.run(spec, store)
    assert summary.status == "complete" and summary.computed == 3
    asr = [p["asr"] for p in landscape(store, summary.run_id)["points"]]
    assert all(a is not None for a in asr)
    moved = tmp_path / "moved.csv"
    moved.write_text(path.read_text())
    elsewhere = tiny_spec(
        directions=[{**direction, "data": {"recipe": "file", "path": str(moved)}}]
    )
    assert plan(elsewhere).run_id == summary.run_id, "the same rows, wherever they live"
    assert sweep.run(elsewhere, store).computed == 0
    moved.write_text("prompt,answer\nHow do I bake bread?,Buy it.\n")
    changed = plan(elsewhere)
    assert changed.run_id != summary.run_id
    assert point_key(changed, "cpu", "float32", 0.5, 0.0) != point_key(
        plan(spec), "cpu", "float32", 0.5, 0.0
    )
    assert point_key(changed, "cpu", "float32", 0.0, 0.0) == point_key(
        plan(spec), "cpu", "float32", 0.0, 0.0
    ), "the model itself is shared"


def test_an_empty_loss_is_an_error_not_a_zero_direction(tiny_loaded):
    data = [Example("word " * 400, "answer")]
    with pytest.raises(UserError, match="fills max_length"):
        descent(tiny_loaded.model, tiny_loaded.tokenizer, [e.prompt for e in data], data)
