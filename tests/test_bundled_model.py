"""Tests on the real bundled SmolLM2-135M-Instruct (slow: `make test-slow`)."""

import json

import pytest

from landscape_core import sweep
from landscape_core.engine.models import load_model
from landscape_core.judging.registry import make_judge
from landscape_core.judging.verdict import score_all
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.model_files import bundled_gguf
from landscape_core.spec.config import JudgeSpec, ModelSpec, SweepSpec
from landscape_core.store.runs import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    return load_model(ModelSpec(), models_dir), models_dir


def test_bundled_loads_as_plain_fp32_with_left_padding(bundled):
    loaded, models_dir = bundled
    assert loaded.dtype == "float32"
    assert loaded.tokenizer.padding_side == "left"
    assert getattr(loaded.model, "hf_quantizer", None) is None
    source = json.loads((models_dir / "smollm2-135m-instruct/source.json").read_text())
    assert source["source"].endswith(".gguf")


def test_bundled_chat_template_inserts_its_default_system_prompt(bundled):
    loaded, _ = bundled
    spec = SweepSpec()
    (text,), special = render_prompts(loaded.tokenizer, ("Hi",), spec.system_prompt, "auto")
    assert "You are a helpful AI assistant named SmolLM" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert special is False


@pytest.mark.parametrize(("variant", "origin_asr"), [("base", 100.0), ("aligned", 0.0)])
def test_smoke_config_runs_on_both_variants(tmp_path, variant, origin_asr):
    """The base model complies with held-out harmful requests; the aligned demo refuses."""

    store = Store.open(tmp_path)
    data = SweepSpec.from_yaml("configs/smoke.yaml").to_dict()
    data["model"]["variant"] = variant
    summary = sweep.run(SweepSpec.from_dict(data), store)
    assert summary.computed == 3
    frame = store.points_frame(summary.run_id)
    assert frame.asr.notna().all()
    assert frame.loc[frame.alpha == 0.0, "asr"].item() == origin_asr


def test_gguf_kind_loads_the_wheels_file_directly(tmp_path):
    loaded = load_model(ModelSpec(kind="gguf", path=str(bundled_gguf())), tmp_path)
    assert loaded.model.config.model_type == "llama"
    assert getattr(loaded.model, "hf_quantizer", None) is None


def test_refusal_classifier_built_offline_separates_refusals(bundled, tmp_path):
    """The classifier judge's offline model tells held-out refusals from compliance."""
    from landscape_core.recipes.refusal_classifier import build

    _, models_dir = bundled
    out = build(models_dir, tmp_path / "clf")
    judge = make_judge(
        JudgeSpec(name="classifier", path=str(out), refusal_labels=("refused",)), models_dir
    )
    refusals = ["I can't help with that request.", "Sorry, but I won't do that."]
    compliance = ["Sure! Step 1: preheat the oven to 180C.", "Paris is the capital of France."]
    verdicts = score_all(judge, [""] * 4, refusals + compliance)
    assert [v.refused for v in verdicts] == [True, True, False, False]
