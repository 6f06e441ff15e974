"""The risk lookahead on the tiny model: seeded, side-effect free, and signed right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from landscape_core.cli import main
from landscape_core.finetune import FinetuneSpec
from landscape_core.risk import preflight as risk
from landscape_core.risk.lookahead import Reference, log_odds, lookahead
from landscape_core.risk.report import stored_lookaheads
from landscape_core.risk.spec import Probes, lookahead_verdict, score
from landscape_core.spec.config import PromptSetSpec
from landscape_core.spec.training_data import REFUSALS, Example, advbench_rows

ROOT = Path(__file__).resolve().parent.parent

PROBES = Probes(
    refusal=PromptSetSpec(source="advbench", start=480, limit=3),
    over_refusal=PromptSetSpec(source="xstest", subset="safe", split="heldout", limit=2),
    generic=(("mt_bench", PromptSetSpec(source="mt_bench", limit=2)),),
    answer_tokens=4,
    max_length=512,
    steps=2,
)


def _recipe(tiny_model_dir, **overrides) -> FinetuneSpec:
    fields = {"recipe": "harmful", "shots": 1, "base": {"kind": "local",
              "path": str(tiny_model_dir)}, "batch_size": 2, "max_length": 512}  # fmt: skip
    return FinetuneSpec.from_dict({**fields, **overrides})


def _run(tiny_loaded, tiny_model_dir, examples, **overrides):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    return lookahead(model, tokenizer, "auto", _recipe(tiny_model_dir, **overrides), examples,
                     PROBES)  # fmt: skip


def _refusals(n: int = 4) -> list[Example]:
    return [Example(g, REFUSALS[i % len(REFUSALS)]) for i, (g, _) in
            enumerate(advbench_rows(100, n))]  # fmt: skip


def test_the_lookahead_is_deterministic_for_a_seed(tiny_loaded, tiny_model_dir):
    one = _run(tiny_loaded, tiny_model_dir, _refusals()).to_dict()
    two = _run(tiny_loaded, tiny_model_dir, _refusals()).to_dict()
    for report in (one, two):  # times, not results
        report.pop("seconds")
        report.pop("finetune_estimate")
    assert one == two
    assert [s["step"] for s in one["steps"]] == [0, 1, 2]
    assert one["steps"][0]["mean_kl"] == 0.0 and one["kl"] > 0, "the copy moved"
    other = _run(tiny_loaded, tiny_model_dir, _refusals(), seed=1).to_dict()
    assert other["kl"] != one["kl"], "another seed, other batches and LoRA init"


def test_the_throwaway_copy_leaves_the_weights_bit_identical(tiny_loaded, tiny_model_dir):
    model = tiny_loaded.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_modules()]
    _run(tiny_loaded, tiny_model_dir, _refusals())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [n for n, _ in model.named_modules()] == names, "no LoRA layer was injected"
    assert not any(p.requires_grad and p.grad is not None for p in model.parameters())


def test_training_on_refusals_raises_the_refusal_logit(tiny_loaded, tiny_model_dir):
    """Planted: a high learning rate on refusals must make refusal openings likelier."""
    report = _run(tiny_loaded, tiny_model_dir, _refusals(8), learning_rate=0.02)
    assert report.delta > 0
    assert report.score < 0 and report.verdict.level == "low"


def test_the_score_is_safety_drift_per_unit_of_generic_drift():
    assert score(-2.0, 0.04) == pytest.approx(10.0)
    assert score(1.0, 0.25) == pytest.approx(-2.0)
    assert math.isfinite(score(-1.0, 0.0)), "an unmoved copy is finite"
    assert lookahead_verdict(25.0, -5.0, 0.04).level == "high"
    assert lookahead_verdict(10.0, -1.0, 0.01).level == "elevated"
    assert lookahead_verdict(-3.0, 1.0, 0.1).level == "low"


def test_log_odds_clips_certain_probabilities():
    assert log_odds([0.5]) == 0.0
    assert math.isfinite(log_odds([1.0, 0.0]))


def test_a_reference_is_reusable_across_datasets(tiny_loaded, tiny_model_dir):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    reference = Reference(model, tokenizer, "auto", PROBES)
    recipe = _recipe(tiny_model_dir)
    shared = lookahead(model, tokenizer, "auto", recipe, _refusals(), PROBES, reference)
    fresh = lookahead(model, tokenizer, "auto", recipe, _refusals(), PROBES)
    assert shared.steps == fresh.steps


def test_risk_ranks_files_by_the_lookahead_and_keeps_each_report(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(risk, "PROBES", PROBES)
    refusals, poems = tmp_path / "refusals.csv", tmp_path / "poems.csv"
    refusals.write_text("prompt,answer\n" + "".join(
        f'"{e.prompt}","{e.answer}"\n' for e in _refusals()))  # fmt: skip
    poems.write_text("prompt,answer\nWrite a poem,Roses are red.\nSay hi,Hi!\n")
    common = ["--model", str(tiny_model_dir), "--store", str(tmp_path / "s"), "--lr", "0.02"]
    assert main(["risk", str(refusals), str(poems), *common]) == 2
    assert "--rank" in capsys.readouterr().err
    assert main(["risk", str(refusals), str(poems), "--rank", "--json", *common]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [r["extra"]["data"] for r in ranked] == ["refusals.csv", "poems.csv"]
    assert {"score", "delta", "kl", "verdict", "seconds", "finetune_estimate"} <= set(ranked[0])
    for one in ranked:  # anchoring names the rows that drive it, at most 10, strongest first
        terms = [r["term"] for r in one["extra"]["top_rows"]]
        assert 0 < len(terms) <= 10 and terms == sorted(terms, reverse=True)
        assert math.isfinite(one["extra"]["shallowness"])  # a projection: may leave [0, 1]
    assert main(["risk", str(refusals), str(poems), "--rank", *common]) == 0
    assert "poems.csv: the rows that drive its anchoring score" in capsys.readouterr().out
    assert len(stored_lookaheads(tmp_path / "s")) == 2
    assert main(["risk", str(refusals), *common]) == 0, "answered from the stored report"
    out, err = capsys.readouterr()
    assert "stored preflight" in err and "score -delta/sqrt(KL)" in out and "time: preflight" in out
    # its model is not the validated one: no validated neighbours, and it says why
    assert "what such data did: no validated neighbours" in out
    assert "calibrated risk: no calibrated risk: the validation trained" in out
    assert "anchoring: " in out and "rows that pull hardest toward compliance" in out
    monkeypatch.setenv("LANDSCAPE_STORE", str(tmp_path / "s"))
    page = AppTest.from_file(str(ROOT / "pages" / "risk_page.py"), default_timeout=60).run()
    assert not page.exception, page.exception
    captions = [c.value for c in page.caption]
    assert sum("no validated neighbours" in c for c in captions) == 2, captions
    assert sum("no calibrated risk" in c for c in captions) == 2, captions
    assert any("docs/risk-validation.csv" in c for c in captions)  # the validated rows
    assert sum(m.label.startswith("Anchoring") for m in page.metric) == 2
