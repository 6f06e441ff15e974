"""Capability companions line up with the safety run, point for point."""

import dataclasses

import numpy as np

from landscape_core import cli, sweep
from landscape_core.readers import capability, figures
from landscape_core.readers.capability import capability_frame, capability_summary, companions


def _small(spec):
    """The companions with 2 prompts each, so the tiny model runs them in seconds."""

    out = {}
    for name, c in companions(spec).items():
        if name == "mmlu:high_school_us_history":
            continue  # its passages overflow the tiny model's context
        shots = {"shots": 1} if c.prompts.source == "mmlu" else {}
        out[name] = dataclasses.replace(c, prompts=dataclasses.replace(c.prompts, limit=2, **shots))
    return out


def test_companions_share_model_prompt_directions_and_grid(tiny_spec):
    spec = tiny_spec()
    found = companions(spec)
    mmlu = {"mmlu:abstract_algebra", "mmlu:high_school_us_history", "mmlu:us_foreign_policy"}
    assert set(found) == {"fluency", "over-refusal", "unsafe-refusal", *mmlu}
    for c in found.values():
        assert (c.model, c.system_prompt, c.directions, c.grid) == (
            spec.model, spec.system_prompt, spec.directions, spec.grid
        )  # fmt: skip
    assert found["fluency"].measure == "perplexity"
    assert found["over-refusal"].prompts.subset == "safe"
    assert found["over-refusal"].prompts.split == "heldout"  # the demo trained on even rows


def test_capability_frame_lines_up_every_point(tiny_spec, store, monkeypatch):
    spec = tiny_spec()
    small = _small(spec)
    monkeypatch.setattr(capability, "companions", lambda s, fluency_prompts=None: small)
    safety = sweep.run(spec, store)
    assert capability_frame(store, safety.run_id).perplexity.isna().all()  # not run yet
    for companion in small.values():
        sweep.run(companion, store)
    frame = capability_frame(store, safety.run_id)
    assert len(frame) == 3
    assert (frame.perplexity > 1).all()
    assert frame.over_refusal.between(0, 100).all()
    assert frame.unsafe_refusal.between(0, 100).all()
    assert frame["mmlu:abstract_algebra"].isin([0.0, 50.0, 100.0]).all()  # 2 questions
    assert frame["mmlu:high_school_us_history"].isna().all()
    summary = capability_summary(frame)
    origin = frame[frame.alpha == 0.0].iloc[0]
    assert summary["perplexity at model"] == origin.perplexity
    assert summary["max perplexity"] == frame.perplexity.max()
    fig = figures.capability_1d(frame)
    assert {t.name for t in fig.data} >= {"ASR of this run (%)", "perplexity of MT-Bench answers"}
    assert fig.layout.yaxis2.type == "log"


def test_capability_2d_panels_share_their_axes(tiny_spec, store, monkeypatch):
    spec = tiny_spec(directions=[{"seed": 1}, {"seed": 2}], grid=[{"num": 3}, {"num": 2}])
    small = _small(spec)
    monkeypatch.setattr(capability, "companions", lambda s, fluency_prompts=None: small)
    safety = sweep.run(spec, store)
    sweep.run(small["fluency"], store)
    frame = capability_frame(store, safety.run_id)
    fig = figures.capability_2d(frame)
    assert len(fig.data) == 2  # ASR and perplexity; over-refusal not run
    assert np.isfinite(fig.data[1].z).all()


def test_capability_cli_prints_the_aligned_table(tiny_spec, store, tmp_path, capsys, monkeypatch):
    spec = tiny_spec()
    small = _small(spec)
    monkeypatch.setattr(capability, "companions", lambda s, fluency_prompts=None: small)
    config = tmp_path / "c.yaml"
    config.write_text(spec.to_yaml())
    assert cli.main(["capability", str(config), "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "over_refusal" in out and "fluency: run" in out
