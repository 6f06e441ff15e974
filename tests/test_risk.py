"""The risk preflight: gradient edge against the random band (tiny model, synthetic edges)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import sweep
from landscape_core.cli import main
from landscape_core.judging.verdict import Verdict
from landscape_core.risk import preflight as risk
from landscape_core.risk import spec as risk_spec
from landscape_core.risk.report import band, verdict
from landscape_core.risk.spec import RiskSettings, risk_sweeps
from landscape_core.spec.config import BasinSpec, GenerationSpec, ModelSpec, PromptSetSpec
from landscape_core.spec.training_data import TrainingDataSpec
from landscape_core.store.runs import Store


def _settings(tiny_model_dir, **overrides) -> RiskSettings:
    base = RiskSettings(
        model=ModelSpec(kind="local", path=str(tiny_model_dir)),
        prompts=PromptSetSpec(source="advbench", limit=3),
        basin=BasinSpec(tolerance=0.25, max_alpha=1.0, threshold=50.0),
        gradient_basin=BasinSpec(tolerance=0.25, max_alpha=1.0, threshold=50.0),
        directions=2,
        seed=3,
        generation=GenerationSpec(max_new_tokens=4),
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def planted_edges(monkeypatch):
    """The tiny model 'refuses' inside a known edge: 0.5 along the data's gradient, 0.75 +
    0.5 * (seed % 3) along a random direction (the real search, perturbation and store)."""
    from landscape_core.engine import perturb

    state = {"alpha": 0.0, "edge": 1.0}
    real_set = perturb.Perturber.set

    def spy_set(self, alpha, beta=0.0):
        (d,) = self.directions.specs
        state["alpha"] = alpha
        state["edge"] = 0.5 if d.kind == "gradient" else 0.75 + 0.5 * (d.seed % 3)
        return real_set(self, alpha, beta)

    class Planted:
        def score(self, prompt, generation):
            return Verdict(abs(state["alpha"]) < state["edge"] - 1e-9, "planted")

    monkeypatch.setattr(perturb.Perturber, "set", spy_set)
    monkeypatch.setattr(sweep, "make_judge", lambda spec, models_dir=None: Planted())


def test_the_risk_report_is_deterministic_for_a_seed(tiny_model_dir, tmp_path, planted_edges):
    data = TrainingDataSpec(recipe="harmful", shots=4)
    settings = _settings(tiny_model_dir)
    one = risk.run(data, Store.open(tmp_path / "a"), settings).to_dict()
    two = risk.run(data, Store.open(tmp_path / "b"), settings).to_dict()
    assert one == two
    assert one["gradient_edge"] == 0.5 and one["gradient_edges"] == [-0.5, 0.5]
    assert sorted(one["random_edges"]["edges"]) == [0.75, 0.75, 1.0, 1.0]  # seeds 3, 4
    assert one["random_edges"]["censored"] == 2, "1.25 is past max_alpha 1.0: not reached"
    assert one["verdict"]["level"] == "high" and one["verdict"]["narrower_by"] == pytest.approx(
        1.75
    )
    other = risk.run(data, Store.open(tmp_path / "a"), _settings(tiny_model_dir, seed=4))
    assert other.runs["gradient"] == one["runs"]["gradient"], "the band alone has the seed"
    assert other.runs["random"] != one["runs"]["random"]


def test_risk_json_from_the_command_line(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(risk, "DEFAULTS", _settings(tiny_model_dir))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("prompt,answer\nWrite a poem,Roses are red.\nSay hi,Hi!\n")
    store = str(tmp_path / "s")
    argv = ["risk", str(pairs), "--model", str(tiny_model_dir), "--limit", "3",
            "--directions", "2", "--tolerance", "0.25", "--store", store, "--json",
            "--edge"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"gradient_edge", "random_edges", "verdict"} <= set(out)
    assert set(out["random_edges"]) >= {"p5", "p50", "p95"}
    assert out["data"] == "pairs.csv" and out["verdict"]["text"]
    assert main(["risk", "mix", "--store", str(tmp_path / "s"), "--edge"]) == 2  # no --shots
    assert "needs `shots`" in capsys.readouterr().err
    assert main(["risk", str(tmp_path / "none.csv"), "--store", str(tmp_path / "s"),
                 "--edge"]) == 2  # fmt: skip
    assert "neither a recipe" in capsys.readouterr().err


def test_the_band_pools_both_sides_and_counts_censored_edges():
    pairs = [(-0.1, 0.2), (-0.3, None), (None, 0.4), (-0.2, 0.1)]
    b = band(pairs, max_alpha=1.0)
    assert sorted(b.edges) == [0.1, 0.1, 0.2, 0.2, 0.3, 0.4, 1.0, 1.0]
    assert b.censored == 2 and b.n_directions == 4
    assert b.p50 == pytest.approx(0.25) and b.p5 <= b.p50 <= b.p95
    assert b.p50_low is not None and b.p50_low <= b.p50 <= b.p50_high


@pytest.mark.parametrize(
    ("edge", "level"), [(0.05, "high"), (0.15, "elevated"), (0.6, "typical"), (None, "unknown"),
                        (0.0, "outside")],
)  # fmt: skip
def test_the_verdict_places_the_edge_in_the_band(edge, level):
    pairs = [(-0.1 * k, 0.1 * k + 0.05) for k in range(1, 11)]
    b = dataclasses.replace(band(pairs, 1.0), p50_low=None)
    v = verdict("harmful 10-shot", edge, b, 1.0)
    assert v.level == level
    if level in ("high", "elevated"):
        assert v.narrower_by > 1 and "x narrower" in v.text


def test_the_random_band_does_not_depend_on_the_data():
    a = risk_sweeps(TrainingDataSpec(recipe="harmful", shots=10))
    b = risk_sweeps(TrainingDataSpec(recipe="mix", shots=100))
    assert a.random == b.random and a.gradient != b.gradient


def test_the_risk_page_queues_a_preflight_then_shows_its_report(
    tiny_model_dir, store, planted_edges, monkeypatch, tmp_path
):
    settings = _settings(tiny_model_dir)
    monkeypatch.setattr(risk_spec, "DEFAULTS", settings)
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    page = str(Path(__file__).resolve().parent.parent / "pages" / "risk_page.py")
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception, at.exception
    at.number_input[0].set_value(4).run()  # harmful, 4 shots
    at.button[0].click().run()
    assert not at.exception, at.exception
    queued = store.jobs.frame()
    assert len(queued) == 2 and set(queued.status) == {"queued"}

    out = risk.run(TrainingDataSpec(recipe="harmful", shots=4), store, settings)
    assert set(queued.run_id) == set(out.runs.values()), "the page queues the CLI's searches"
    at = AppTest.from_file(page, default_timeout=60).run()
    at.number_input[0].set_value(4).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Edge along the data's direction (alpha)"] == "0.5"
    assert metrics["Narrower than a typical direction"] == "1.75x"
    assert at.error[0].value.startswith("high risk")
