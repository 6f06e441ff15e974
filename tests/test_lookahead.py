"""The risk lookahead on the tiny model: seeded, side-effect free, and signed right."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from landscape_core.cli import main
from landscape_core.finetune import FinetuneSpec
from landscape_core.risk import lookahead as engine
from landscape_core.risk import preflight as risk
from landscape_core.risk.lookahead import Reference, log_odds, lookahead
from landscape_core.risk.report import stored_lookaheads
from landscape_core.risk.spec import (
    LookaheadReport,
    LookaheadStep,
    Probes,
    lookahead_report,
    lookahead_verdict,
    sampled_rows,
    score,
)
from landscape_core.spec.config import ModelSpec, PromptSetSpec, TrainingDataSpec
from landscape_core.spec.training_data import REFUSALS, Example, advbench_rows
from landscape_core.store.runs import Store

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


def _run(tiny_loaded, tiny_model_dir, examples, every_step=False, **overrides):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    return lookahead(model, tokenizer, "auto", _recipe(tiny_model_dir, **overrides), examples,
                     PROBES, every_step=every_step)  # fmt: skip


def _refusals(n: int = 4) -> list[Example]:
    return [Example(g, REFUSALS[i % len(REFUSALS)]) for i, (g, _) in
            enumerate(advbench_rows(100, n))]  # fmt: skip


def test_the_lookahead_is_deterministic_for_a_seed(tiny_loaded, tiny_model_dir):
    one = _run(tiny_loaded, tiny_model_dir, _refusals())
    every = _run(tiny_loaded, tiny_model_dir, _refusals(), every_step=True)
    assert [s.step for s in one.steps] == [0, 2], "the score needs step 0 and step k"
    assert [s.step for s in every.steps] == [0, 1, 2], "a trajectory when asked for"
    assert every.steps[1] != every.steps[2], "step 1 was measured on its own weights"
    # measuring moves no weight: step k, and so every result, is the same either way
    assert (every.steps[0], every.steps[-1]) == one.steps
    fields = ("score", "delta", "kl", "over_refusal_delta", "initial_loss", "verdict")
    assert [getattr(every, f) for f in fields] == [getattr(one, f) for f in fields]
    assert one.steps[0].mean_kl == 0.0 and one.kl > 0, "the copy moved"
    other = _run(tiny_loaded, tiny_model_dir, _refusals(), seed=1)
    assert other.kl != one.kl, "another seed, other batches and LoRA init"


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


def test_the_data_proportional_measures_read_every_row_up_to_the_cap_then_a_seeded_sample():
    assert sampled_rows(5, 0, seed=0) == sampled_rows(5, 5, seed=0) == [0, 1, 2, 3, 4]
    one = sampled_rows(1000, 128, seed=0)
    assert len(set(one)) == 128 and one == sorted(one) and one[0] >= 0 and one[-1] < 1000
    assert sampled_rows(1000, 128, seed=0) == one, "the recipe's seed decides the sample"
    assert sampled_rows(1000, 128, seed=1) != one


def test_log_odds_clips_certain_probabilities():
    assert log_odds([0.5]) == 0.0
    assert math.isfinite(log_odds([1.0, 0.0]))


def test_a_kept_reference_is_reusable_across_datasets_and_a_stale_one_rebuilt(
    tiny_loaded, tiny_model_dir, tmp_path, monkeypatch
):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    path = tmp_path / "references" / "model.json"
    built = Reference.cached(model, tokenizer, "auto", PROBES, path)
    kept = json.loads(path.read_text())
    assert set(kept) == {"answers", "origin"} and kept["answers"] == built.answers
    assert not built.kept

    def generate(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("a kept reference generates nothing")

    monkeypatch.setattr(engine, "own_answers", generate)
    again = Reference.cached(model, tokenizer, "auto", PROBES, path)
    assert again.kept and again.origin == built.origin and again.answers == built.answers
    monkeypatch.undo()
    recipe = _recipe(tiny_model_dir)  # a kept reference gives what a fresh one gives
    fresh = lookahead(model, tokenizer, "auto", recipe, _refusals(), PROBES)
    shared = lookahead(model, tokenizer, "auto", recipe, _refusals(), PROBES, again)
    assert shared.steps == fresh.steps
    stale = {"answers": {"mt_bench": ["only one"]}, "origin": kept["origin"]}  # other probes
    path.write_text(json.dumps(stale))
    rebuilt = Reference.cached(model, tokenizer, "auto", PROBES, path)
    assert not rebuilt.kept and rebuilt.origin == built.origin
    assert json.loads(path.read_text()) == kept, "the stale file was replaced"


def test_risk_ranks_files_by_the_lookahead_and_keeps_each_report(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(risk, "PROBES", PROBES)
    refusals, poems = tmp_path / "refusals.csv", tmp_path / "poems.csv"
    refusals.write_text("prompt,answer\n" + "".join(
        f'"{e.prompt}","{e.answer}"\n' for e in _refusals()))  # fmt: skip
    poems.write_text("prompt,answer\nWrite a poem,Roses are red.\nSay hi,Hi!\n")
    common = ["--model", str(tiny_model_dir), "--store", str(tmp_path / "s"), "--lr", "0.02",
              "--rows", "3"]  # fmt: skip  # refusals' 4 rows are sampled, poems' 2 are not
    assert main(["risk", str(refusals), str(poems), *common]) == 2
    assert "--rank" in capsys.readouterr().err
    assert main(["risk", str(refusals), str(poems), "--rank", "--json", *common]) == 0
    out, err = capsys.readouterr()
    ranked = json.loads(out)
    assert err.count("built, and kept") == 1 and err.count("kept from an earlier") == 1
    assert [r["extra"]["data"] for r in ranked] == ["refusals.csv", "poems.csv"]
    assert {"score", "delta", "kl", "verdict", "seconds", "finetune_estimate"} <= set(ranked[0])
    for one in ranked:  # anchoring names the rows that drive it, at most 10, strongest first
        terms = [r["term"] for r in one["extra"]["top_rows"]]
        assert 0 < len(terms) <= 10 and terms == sorted(terms, reverse=True)
        assert math.isfinite(one["extra"]["shallowness"])  # a projection: may leave [0, 1]
    sampled = {i + 1 for i in sampled_rows(4, 3, seed=0)}  # the recipe's seed
    assert [r["extra"]["rows_read"] for r in ranked] == [3, 2]
    assert {r["row"] for r in ranked[0]["extra"]["top_rows"]} == sampled, "data rows, 1-based"
    prompts = [e.prompt for e in _refusals()]
    assert all(r["prompt"] == prompts[r["row"] - 1] for r in ranked[0]["extra"]["top_rows"])
    assert main(["risk", str(refusals), str(poems), "--rank", *common]) == 0
    ranking = capsys.readouterr().out
    assert "poems.csv: the rows that drive its anchoring score" in ranking
    assert "preflight s (of finetune)" in ranking and "x)  " in ranking, "both times, per row"
    assert len(stored_lookaheads(tmp_path / "s")) == 2
    assert main(["risk", str(refusals), *common]) == 0, "answered from the stored report"
    out, err = capsys.readouterr()
    assert "stored preflight" in err and "score -delta/sqrt(KL)" in out and "time: preflight" in out
    assert "the model's reference, kept for its next preflight" in out and "anchoring " in out
    assert out.count("(over a seeded sample of 3 rows)") == 2 and "--rows 0 reads all" in out
    assert main(["risk", str(refusals), *common[:-2], "--rows", "-1"]) == 2
    assert "--rows >= 0" in capsys.readouterr().err
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


def test_two_models_never_share_a_stored_preflight_or_reference(tiny_model_dir, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    """Their files name them, as they name runs: a path or an adapter alone does not."""
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    config = other / "config.json"
    config.write_text(config.read_text() + "\n")  # other bytes, the same settings
    seen = []

    def preflight(fields, models_dir, probes, references, weights, say):  # noqa: ANN001
        seen.append(weights)
        return _run_stub(fields)

    monkeypatch.setattr(engine, "preflight", preflight)
    store = Store.open(tmp_path / "s")
    data = TrainingDataSpec(recipe="harmful", shots=1)
    for folder in (tiny_model_dir, other, tiny_model_dir):
        risk.lookahead(data, store, ModelSpec(kind="local", path=str(folder)), {}, PROBES)
    assert len(seen) == 2 and seen[0] != seen[1], "the copy's own preflight; the first's kept"
    assert len(stored_lookaheads(store.root)) == 2


def _run_stub(fields) -> LookaheadReport:  # noqa: ANN001
    step = LookaheadStep(0, None, 1.0, 0.0, (("mt_bench", 0.0),))
    return lookahead_report((step, step), examples=1, initial_loss=1.0, seconds=0.0,
                            finetune_estimate=1.0)  # fmt: skip
