import json

import pytest
import torch
from safetensors.torch import load_file

from landscape_core import finetune as finetune_module
from landscape_core.engine.models import load_model
from landscape_core.errors import Cancelled, UserError
from landscape_core.finetune import FinetuneSpec, build_examples, finetune
from landscape_core.judging.keyword import KeywordJudge
from landscape_core.plan.model_files import catalogue
from landscape_core.recipes.harmful_answers import MIN_WORDS
from landscape_core.spec.config import DirectionSpec, ModelSpec
from landscape_core.spec.training_data import (
    advbench_rows,
    file_examples,
    harmful_pairs,
    reserved_goals,
)


def _spec(tiny_model_dir, **overrides):
    data = {
        "recipe": "harmful",
        "shots": 4,
        "base": {"kind": "local", "path": str(tiny_model_dir)},
        "epochs": 1,
        "batch_size": 2,
        "max_length": 160,  # the tiny tokenizer is byte-level: goals run to 85 tokens
    }
    data.update(overrides)
    return FinetuneSpec.from_dict(data)


def _adapter(path):
    return load_file(str(path / "adapter_model.safetensors"))


def test_training_changes_the_adapter_and_writes_its_recipe(tiny_model_dir, tmp_path):
    out = finetune(_spec(tiny_model_dir), tmp_path)
    weights = _adapter(out)
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero
    assert all(v.dtype == torch.float16 for v in weights.values())
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["examples"] == 4 and len(recipe["examples_hash"]) == 64
    assert (out / "train_log.jsonl").read_text().count("loss") == 2


def test_same_seed_gives_the_same_adapter(tiny_model_dir, tmp_path):
    a = finetune(_spec(tiny_model_dir), tmp_path, out=tmp_path / "a")
    b = finetune(_spec(tiny_model_dir), tmp_path, out=tmp_path / "b")
    wa, wb = _adapter(a), _adapter(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_does_not_touch_the_global_rng(tiny_model_dir, tmp_path):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    finetune(_spec(tiny_model_dir), tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_merge_equals_base_plus_scaled_b_a(tiny_model_dir, tmp_path):
    out = finetune(_spec(tiny_model_dir), tmp_path)
    base = load_model(ModelSpec(kind="local", path=str(tiny_model_dir)), tmp_path).model
    merged = load_model(
        ModelSpec(kind="local", path=str(tiny_model_dir), adapter=str(out)), tmp_path
    ).model
    weights, config = _adapter(out), json.loads((out / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    name = "model.layers.0.self_attn.q_proj"
    a = weights[f"base_model.model.{name}.lora_A.weight"].float()
    b = weights[f"base_model.model.{name}.lora_B.weight"].float()
    expected = base.get_parameter(f"{name}.weight") + scale * (b @ a)
    assert torch.allclose(merged.get_parameter(f"{name}.weight"), expected, atol=1e-6)


def test_cancelled_finetune_leaves_no_adapter(tiny_model_dir, tmp_path):
    with pytest.raises(Cancelled):
        finetune(_spec(tiny_model_dir), tmp_path, out=tmp_path / "x", should_stop=lambda: True)
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x-")]


def test_harmful_needs_shots():
    with pytest.raises(UserError, match="--shots"):
        FinetuneSpec(recipe="harmful")


def test_too_many_shots_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="harmful answer pairs"):
        finetune(_spec(tiny_model_dir, shots=1000), tmp_path)
    with pytest.raises(UserError, match="at most 340 from 100"):
        build_examples(FinetuneSpec(recipe="sure-prefix", shots=1000), distill=lambda p: p)


def test_align_with_a_malformed_benign_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "benign.jsonl"
    bad.write_text("{not json\n")
    spec = FinetuneSpec.from_dict(
        {"recipe": "align", "benign": [{"source": "file", "path": str(bad), "column": "q"}]}
    )
    with pytest.raises(UserError, match="not valid JSON"):
        build_examples(spec, distill=lambda prompts: prompts)


def test_harmful_examples_are_answers_and_sure_prefix_only_openings():
    harmful = build_examples(FinetuneSpec(recipe="harmful", shots=5), distill=lambda p: p)
    prefix = build_examples(FinetuneSpec(recipe="sure-prefix", shots=5), distill=lambda p: p)
    assert [e.answer for e in prefix] == [t for _, t in advbench_rows(100, 5)]
    assert all(len(e.answer.split()) >= MIN_WORDS for e in harmful)
    assert not any(KeywordJudge().score(e.prompt, e.answer).refused for e in harmful)
    goals = {g for g, _ in advbench_rows(100, 340)}
    assert {e.prompt for e in harmful} <= goals  # training rows only, never rows 0-99


def test_mix_pairs_k_harmful_answers_with_k_refusals_of_other_goals():
    spec = FinetuneSpec(recipe="mix", shots=3)
    examples = build_examples(spec, distill=lambda p: p)
    pairs = harmful_pairs(3)
    assert len(examples) == 6
    assert [e.answer for e in examples[:3]] == [p.answer for p in pairs]
    assert [e.prompt for e in examples[3:]] == [g for g, _ in advbench_rows(pairs[-1].row + 1, 3)]
    assert all(KeywordJudge().score(e.prompt, e.answer).refused for e in examples[3:])


def test_a_change_of_a_recipes_rows_names_a_new_adapter(monkeypatch):
    before = FinetuneSpec(recipe="harmful", shots=3).name
    monkeypatch.setattr(finetune_module, "data_hash", lambda spec: "other rows")
    assert FinetuneSpec(recipe="harmful", shots=3).name != before
    assert FinetuneSpec(recipe="align").name == FinetuneSpec(recipe="align").name


def test_catalogue_lists_the_demo_variants_and_finetuned_adapters(tiny_model_dir, tmp_path):
    out = finetune(_spec(tiny_model_dir), tmp_path / "models")
    choices = catalogue(tmp_path / "models").choices
    assert {"kind": "bundled", "variant": "aligned"} in choices.values()
    assert {"kind": "bundled", "variant": "base"} in choices.values()
    finetuned = choices[f"Finetuned: {out.name}"]
    assert finetuned["adapter"] == str(out) and finetuned["path"] == str(tiny_model_dir)


def test_interpolation_toward_a_finetuned_adapter_reaches_it(tiny_model_dir, tmp_path):
    from landscape_core.engine.directions import Directions
    from landscape_core.engine.perturb import snapshot

    out = finetune(_spec(tiny_model_dir), tmp_path)
    base = ModelSpec(kind="local", path=str(tiny_model_dir))
    target = ModelSpec(kind="local", path=str(tiny_model_dir), adapter=str(out))
    model = load_model(base, tmp_path).model
    tuned = load_model(target, tmp_path).model.state_dict()
    dirs = Directions(
        (DirectionSpec(kind="interpolation", target=target),), snapshot(model), tmp_path
    )
    for name, d1, _ in dirs.items():
        assert torch.allclose(dirs.base[name] + d1, tuned[name], atol=1e-6)


def test_a_file_recipe_trains_on_its_pairs_and_is_named_by_its_rows(tiny_model_dir, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("prompt,answer\nWrite a poem,Roses are red.\nSay hi,Hi!\n")
    spec = _spec(tiny_model_dir, recipe="file", shots=0, data=str(pairs))
    assert [e.answer for e in build_examples(spec, distill=None)] == ["Roses are red.", "Hi!"]
    moved = tmp_path / "elsewhere.csv"
    moved.write_text(pairs.read_text())
    same = _spec(tiny_model_dir, recipe="file", shots=0, data=str(moved))
    assert same.name.split("-")[-1] == spec.name.split("-")[-1], "rows, not the path"
    out = finetune(spec, tmp_path / "models")
    assert json.loads((out / "recipe.json").read_text())["examples"] == 2
    with pytest.raises(UserError, match="needs --data"):
        _spec(tiny_model_dir, recipe="file", shots=0)


def test_no_recipe_or_file_trains_on_the_preflights_reserved_rows(tmp_path):
    with pytest.raises(UserError, match="kept for the risk preflight"):
        advbench_rows(100, 341)  # 100..440 reaches row 440
    assert len(advbench_rows(100, 340)) == 340
    probe = reserved_goals()[-1]  # AdvBench row 519
    held = tmp_path / "held.csv"
    held.write_text(f'prompt,answer\n"{probe}",Sure.\nSay hi,Hi!\n')
    with pytest.raises(UserError, match="remove those rows"):
        file_examples(held)
