"""Section 7 of the paper miniature: finetunes' trajectories and the risk preflight.

Every finetune's checkpoints are drawn on the plane of the harmful 10-shot finetune
(Fig. 1B's picture: one path should leave the basin, the mix's should stay), and each
dataset's preflight edge is set against the order in which its finetune broke safety.
Everything goes through the store, so a second ``make paper`` recomputes nothing. This
module runs the section; its text is in ``paper_render`` with the rest of the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.plan.checkpoints import read_checkpoints
from landscape_core.plan.identity import plan, plane_key
from landscape_core.recipes.trajectory import plane_spec, trajectory
from landscape_core.risk import preflight as risk
from landscape_core.risk.report import RiskReport, Unfinished, report
from landscape_core.risk.spec import DEFAULTS, RiskSettings, risk_sweeps
from landscape_core.spec.config import PromptSetSpec, SweepSpec, TrainingDataSpec
from landscape_core.store.runs import Store

THRESHOLD = DEFAULTS.basin.threshold  # a checkpoint at or above this ASR left the basin
# a control: data that teaches refusals and benign answers, never compliance
CONTROL = ("align (control)", TrainingDataSpec(recipe="align"))


@dataclass(frozen=True)
class Setup:
    """The miniature's model and prompt sets, as the rest of the report uses them."""

    risk: RiskSettings  # the preflight's model, prompts (the landscapes') and tokens
    checkpoints: PromptSetSpec  # what each checkpoint is evaluated on (the ASR prompts)


@dataclass
class Section7:
    paths: dict[str, pd.DataFrame]  # finetune -> its checkpoints (empty: not computed)
    plane_run: str
    risks: dict[str, RiskReport | None]


def data_of(name: str) -> TrainingDataSpec:
    """'harmful 10-shot' -> the data that finetune trained on."""
    recipe, shots = name.split()
    return TrainingDataSpec(recipe=recipe, shots=int(shots.removesuffix("-shot")))


def plane_of(adapters: dict[str, Path]) -> str:
    """The finetune whose plane every path is drawn on: the smallest harmful one."""
    return next(name for name in adapters if name.startswith("harmful"))


def run_section7(
    store: Store,
    adapters: dict[str, Path],
    setup: Setup,
    compute: bool,
    progress: Callable[[str], None],
) -> Section7:
    on = adapters[plane_of(adapters)].resolve()
    plane = plane_spec(on, prompts=setup.risk.prompts)
    paths: dict[str, pd.DataFrame] = {}
    risks: dict[str, RiskReport | None] = {}
    if compute:
        stored = store.trajectories.on_plane(plane_key(plan(plane, store.file_digest)))
        for name, adapter in adapters.items():
            done = stored.get(str(adapter.resolve()), pd.DataFrame())
            if _complete(done, adapter, setup.checkpoints, store):  # computed before: reuse
                paths[name] = done
                continue
            progress(f"trajectory of {name} (section 7)")
            points = trajectory(adapter, store, prompts=setup.checkpoints, on=on, say=progress)
            paths[name] = pd.DataFrame([dataclasses.asdict(p) for p in points])
        progress("the plane under the paths (section 7)")
        plane_run = sweep.run(plane, store).run_id
        for name, data in _datasets(adapters):
            progress(f"risk preflight of {name} (section 7)")
            risks[name] = risk.run(data, store, setup.risk, say=progress)
        return Section7(paths, plane_run, risks)
    try:
        planned = plan(plane, store.file_digest)
    except UserError:  # the finetunes are not trained yet
        return Section7({}, "", {})
    stored = store.trajectories.on_plane(plane_key(planned))
    for name, adapter in adapters.items():
        paths[name] = stored.get(str(adapter.resolve()), pd.DataFrame())
    for name, data in _datasets(adapters):
        sweeps = risk_sweeps(data, setup.risk)
        try:
            ids = [plan(s, store.file_digest).run_id for s in (sweeps.gradient, sweeps.random)]
            risks[name] = report(store, *ids)
        except (Unfinished, UserError):
            risks[name] = None
    return Section7(paths, planned.run_id, risks)


def _complete(path: pd.DataFrame, adapter: Path, prompts: PromptSetSpec, store: Store) -> bool:
    """A stored path has every checkpoint the adapter saved, each evaluated on ``prompts``."""
    steps = [c.step for c in read_checkpoints(adapter)]
    if path.empty or sorted(path.step) != steps or path.asr.isna().any():
        return False
    evaluated = [SweepSpec.from_dict(store.run(r)["spec"]).prompts for r in path.run_id]
    return all(p == prompts for p in evaluated)


def _datasets(adapters: dict[str, Path]) -> list[tuple[str, TrainingDataSpec]]:
    """Each finetune's data, then the control."""
    return [(name, data_of(name)) for name in adapters] + [CONTROL]


def left_at(path: pd.DataFrame) -> int | None:
    """The first checkpoint's step whose own ASR reached the threshold; None: never."""
    if path.empty:
        return None
    out = path[path.asr >= THRESHOLD].sort_values("step")
    return None if out.empty else int(out.step.iloc[0])
