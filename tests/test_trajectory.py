"""Finetuning checkpoints and their trajectory over the landscape's plane (tiny model)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from streamlit.testing.v1 import AppTest

from landscape_core import sweep
from landscape_core.engine.directions import Directions
from landscape_core.engine.models import load_model
from landscape_core.engine.perturb import unique_parameters
from landscape_core.engine.projection import project
from landscape_core.errors import Cancelled, UserError
from landscape_core.finetune import FinetuneSpec, finetune
from landscape_core.plan.checkpoints import read_checkpoints
from landscape_core.plan.identity import plan, plane_key
from landscape_core.recipes.trajectory import TOKENS, as_json, plane_spec, trajectory
from landscape_core.spec.config import AxisSpec, DirectionSpec, ModelSpec, PromptSetSpec


def _spec(tiny_model_dir, **overrides) -> FinetuneSpec:
    data = {"recipe": "harmful", "shots": 4, "base": {"kind": "local", "path": str(tiny_model_dir)},
            "epochs": 2, "batch_size": 2, "max_length": 256, "checkpoints": 2}  # fmt: skip
    return FinetuneSpec.from_dict({**data, **overrides})


def test_projection_recovers_planted_coordinates_with_no_residual(tiny_model_dir, tiny_target_dir):
    model = ModelSpec(kind="local", path=str(tiny_model_dir))
    loaded = load_model(model, tiny_model_dir.parent)
    base = {n: p.detach() for n, p in unique_parameters(loaded.model).items()}
    target = ModelSpec(kind="local", path=str(tiny_target_dir))
    specs = (DirectionSpec(kind="interpolation", target=target), DirectionSpec(seed=5))
    directions = Directions(specs, base, tiny_model_dir.parent, cache=True)
    d = {name: (d1.double(), d2.double()) for name, d1, d2 in directions.items()}
    for a, b in [(0.3, -0.7), (1.0, 0.0), (0.0, 0.0), (-2.5, 4.0)]:
        planted = {n: base[n].double() + a * d1 + b * d2 for n, (d1, d2) in d.items()}
        at = project(directions, base, planted.__getitem__)
        assert at.alpha == pytest.approx(a, abs=1e-9) and at.beta == pytest.approx(b, abs=1e-9)
        assert at.residual == pytest.approx(0.0, abs=1e-6 * max(at.distance, 1.0))
    off = {n: base[n].double() + 0.5 * d1 + torch.ones_like(d1) for n, (d1, _) in d.items()}
    assert project(directions, base, off.__getitem__).relative_residual > 0.1


def test_checkpoints_are_saved_atomically_with_their_step_loss_and_data_hash(
    tiny_model_dir, tmp_path
):
    out = finetune(_spec(tiny_model_dir), tmp_path)
    recipe = json.loads((out / "recipe.json").read_text())
    saved = read_checkpoints(out)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [c.step for c in saved] == [2, 4] and len(log) == 4  # every 2 of 4 steps, the last
    assert [c.loss for c in saved] == [log[1]["loss"], log[3]["loss"]]
    assert {c.data_hash for c in saved} == {recipe["examples_hash"]}
    config = (out / "adapter_config.json").read_text()
    modules = json.loads(config)["target_modules"]
    assert modules == sorted(modules), "a set's order would change the adapter's fingerprint"
    last = load_file(f"{saved[-1].path}/adapter_model.safetensors")
    final = load_file(str(out / "adapter_model.safetensors"))
    assert all(torch.equal(last[k], final[k]) for k in final), "the last checkpoint is the adapter"

    calls = []

    def stop() -> bool:  # cancel after the first checkpoint was written
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        finetune(_spec(tiny_model_dir, seed=1), tmp_path, should_stop=stop)
    assert not (tmp_path / _spec(tiny_model_dir, seed=1).name).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial output"


def test_checkpoints_of_other_data_are_refused(tiny_model_dir, tmp_path):
    out = finetune(_spec(tiny_model_dir), tmp_path)
    record = out / "checkpoints" / "step-000002" / "checkpoint.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "data_hash": "f" * 64}))
    with pytest.raises(UserError, match="trained on other data"):
        read_checkpoints(out)
    with pytest.raises(UserError, match="has no checkpoints"):
        read_checkpoints(finetune(_spec(tiny_model_dir, checkpoints=0), tmp_path))


def test_the_trajectory_ends_at_the_finetune_and_is_deterministic(tiny_model_dir, store, tmp_path):
    out = finetune(_spec(tiny_model_dir), store.models_dir)
    points = trajectory(out, store, seed=3)
    assert [p.step for p in points] == [2, 4]
    last = points[-1]
    assert last.alpha == pytest.approx(1.0, abs=1e-6) and last.beta == pytest.approx(0.0, abs=1e-6)
    assert last.relative_residual < 1e-6
    assert all(p.asr is not None and 0 <= p.asr <= 100 for p in points)
    again = trajectory(out, store, seed=3)
    assert again == points, "the same checkpoints give the same coordinates and cached ASRs"
    report = as_json(plane_spec(out, 3), out, points)
    assert set(report["checkpoints"][0]) >= {"step", "alpha", "beta", "residual", "asr"}
    assert report["plane"]["directions"][0]["kind"] == "interpolation"
    plane = plane_key(plan(plane_spec(out, 3), store.file_digest))
    stored = store.trajectories.on_plane(plane)[str(out)]
    assert list(stored.step) == [2, 4] and list(stored.alpha) == [p.alpha for p in points]

    other = finetune(_spec(tiny_model_dir, recipe="mix", shots=2), store.models_dir)
    on_theirs = trajectory(other, store, seed=3, evaluate=False, on=out)
    assert on_theirs[-1].relative_residual > 0.01, "another finetune's path leaves the plane"
    assert set(store.trajectories.on_plane(plane)) == {str(out), str(other)}


def test_the_landscape_page_draws_the_path_on_any_run_of_its_plane(
    tiny_model_dir, store, monkeypatch
):
    out = finetune(_spec(tiny_model_dir), store.models_dir)
    points = trajectory(out, store, seed=3)
    grid = (AxisSpec(-0.5, 1.5, 3), AxisSpec(-0.5, 0.5, 3))  # not the plane's own grid
    tokens = replace(TOKENS, max_new_tokens=3)
    small = replace(
        plane_spec(out, 3), grid=grid, prompts=PromptSetSpec(limit=2), generation=tokens
    )
    run_id = sweep.run(small, store).run_id
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    page = Path(__file__).resolve().parent.parent / "pages" / "landscape_page.py"
    at = AppTest.from_file(str(page), default_timeout=60)
    at.session_state["run_id"] = run_id
    at = at.run()
    assert not at.exception, at.exception
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    path = [t for t in figure["data"] if t.get("name", "").startswith("finetune ")]
    assert path and path[0]["name"] == f"finetune {out.name}"
    table = next(d.value for d in at.dataframe if "off the plane" in d.value.columns)
    assert list(table.step) == [2, 4]
    assert list(table.alpha) == [round(p.alpha, 3) for p in points]
