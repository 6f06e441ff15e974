"""What names a run, a point and a judge: file digests, never where the files live."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import build_tiny_model

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.finetune import FinetuneSpec
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.identity import judge_label, plan
from landscape_core.plan.preflight import preflight
from landscape_core.plan.tokens import prompt_lengths
from landscape_core.spec.config import JudgeSpec, ModelSpec
from landscape_core.spec.datasets import load_prompts


def test_a_moved_checkpoint_keeps_its_run_id(tiny_spec, tiny_model_dir, tmp_path, store):
    moved = shutil.copytree(tiny_model_dir, tmp_path / "somewhere" / "else")
    here = plan(tiny_spec(), store.file_digest)
    there = plan(tiny_spec(model={"kind": "local", "path": str(moved)}), store.file_digest)
    assert here.run_id == there.run_id


def _fake_adapter(directory, payload: bytes):
    directory.mkdir(parents=True)
    (directory / "adapter_model.safetensors").write_bytes(payload)
    (directory / "adapter_config.json").write_text("{}")
    return directory


def test_an_adapter_is_named_by_its_files_not_its_path(tiny_spec, tiny_model_dir, tmp_path):
    def run_id(adapter):
        model = {"kind": "local", "path": str(tiny_model_dir), "adapter": str(adapter)}
        return plan(tiny_spec(model=model)).run_id

    a = _fake_adapter(tmp_path / "store-a" / "models" / "mix", b"weights")
    b = _fake_adapter(tmp_path / "store-b" / "models" / "mix", b"weights")
    c = _fake_adapter(tmp_path / "other", b"other weights")
    assert run_id(a) == run_id(b) != run_id(c)


def test_a_rewritten_interpolation_target_is_never_reused(tiny_spec, tmp_path, store):
    target = build_tiny_model(tmp_path / "target", seed=1)
    spec = tiny_spec(
        directions=[{"kind": "interpolation", "target": {"kind": "local", "path": str(target)}}],
        grid=[{"start": 0.0, "stop": 1.0, "num": 3}],
    )
    first = sweep.run(spec, store)
    assert first.computed == 3
    build_tiny_model(target, seed=2)  # new weights, same path
    second = sweep.run(spec, store)
    assert second.run_id != first.run_id
    assert second.computed == 2  # alpha = 0 is the model itself; both others are new


def test_two_classifiers_in_directories_of_one_name_get_their_own_labels(tmp_path):
    def classifier(where, weights: bytes):
        directory = tmp_path / where / "refusal-classifier"
        directory.mkdir(parents=True)
        (directory / "model.safetensors").write_bytes(weights)
        (directory / "config.json").write_text("{}")
        return JudgeSpec(name="classifier", path=str(directory), refusal_labels=("refused",))

    a, b = classifier("a", b"one"), classifier("b", b"two")
    copy = classifier("c", b"one")
    assert judge_label(a) != judge_label(b)
    assert judge_label(a) == judge_label(copy)  # the same files, elsewhere
    assert judge_label(a).startswith("classifier:refusal-classifier@")
    assert judge_label(JudgeSpec(name="refusal-patterns")) == "refusal-patterns"


def test_model_specs_key_without_paths():
    spec = ModelSpec(kind="local", path="/data/ckpt", adapter="/data/lora")
    assert "path" not in spec.key_dict() and "adapter" not in spec.key_dict()


def test_a_prompt_longer_than_the_context_is_refused_before_anything_is_stored(
    tiny_spec, store, tmp_path
):
    path = tmp_path / "prompts.csv"
    long = " ".join(["a sorry tutorial"] * 400)
    pd.DataFrame({"prompt": ["short", long, "also short"]}).to_csv(path, index=False)
    spec = tiny_spec(prompts={"source": "file", "path": str(path), "column": "prompt"})
    with pytest.raises(UserError, match=r"prompt 1 of the set .* context of 1024 tokens"):
        preflight(spec, store.root)
    with pytest.raises(UserError, match=r"prompt 1 of the set .* context of 1024 tokens"):
        sweep.run(spec, store)
    assert store.runs_frame().empty


def test_preflight_counts_tokens_and_memory_as_the_engine_does(tiny_spec, tiny_loaded, store):
    spec = tiny_spec(system_prompt={"preset": "llama2"})
    prompts = load_prompts(spec.prompts).prompts
    tok = tiny_loaded.tokenizer
    texts, special = render_prompts(tok, prompts, spec.system_prompt, "auto")
    real = [len(ids) for ids in tok(texts, add_special_tokens=special).input_ids]
    assert prompt_lengths(spec, prompts, Path(spec.model.path)) == real
    before = preflight(spec, store.root).memory.describe()
    run = store.run(sweep.run(spec, store).run_id)
    assert run["provenance"]["memory_estimate"] == before  # one estimate, both sides


def test_options_added_later_rename_no_trained_adapter():
    """The names adapters had before MMLU's prompt fields existed (pinned; the harmful
    recipe's rows entered it when its data became harmful answers)."""
    spec = FinetuneSpec(recipe="harmful", shots=10, base=ModelSpec(kind="bundled"))
    assert spec.name == "harmful-10shot-seed0-e03249e7"  # the harmful answers, by their rows
    changed = FinetuneSpec(recipe="harmful", shots=10, base=ModelSpec(kind="bundled"), epochs=4)
    assert changed.name != spec.name
