"""Section 7 of the paper miniature: finetunes' trajectories.

Every finetune's checkpoints are drawn on the plane of the harmful 10-shot finetune
(Fig. 1B's picture: one path should leave the basin, the mix's should stay).
Everything goes through the store, so a second ``make paper`` recomputes nothing. This
module runs the section; its text is in ``paper_render`` with the rest of the report.
The risk preflight's validation beside it is ``risk.validation``, from its own data
file (``benchmarks/risk_validation.py``): the old basin-edge preflight it replaced
could not rank datasets (issue 30).
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
from landscape_core.risk.spec import DEFAULTS, RiskSettings
from landscape_core.spec.config import PromptSetSpec, SweepSpec
from landscape_core.store.runs import Store

THRESHOLD = DEFAULTS.basin.threshold  # a checkpoint at or above this ASR left the basin


@dataclass(frozen=True)
class Setup:
    """The miniature's model and prompt sets, as the rest of the report uses them."""

    risk: RiskSettings  # the preflight's model, prompts (the landscapes') and tokens
    checkpoints: PromptSetSpec  # what each checkpoint is evaluated on


@dataclass
class Section7:
    paths: dict[str, pd.DataFrame]  # finetune -> its checkpoints (empty: not computed)
    plane_run: str


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
    paths: dict[str, pd.DataFrame] = {}
    if compute:
        plane = plane_spec(on, prompts=setup.risk.prompts)
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
        return Section7(paths, sweep.run(plane, store).run_id)
    try:
        planned = plan(plane_spec(on, prompts=setup.risk.prompts), store.file_digest)
    except UserError:  # the finetunes are not trained yet
        return Section7({}, "")
    stored = store.trajectories.on_plane(plane_key(planned))
    for name, adapter in adapters.items():
        paths[name] = stored.get(str(adapter.resolve()), pd.DataFrame())
    return Section7(paths, planned.run_id)


def _complete(path: pd.DataFrame, adapter: Path, prompts: PromptSetSpec, store: Store) -> bool:
    """A stored path has every checkpoint the adapter saved, each evaluated on ``prompts``."""
    steps = [c.step for c in read_checkpoints(adapter)]
    if path.empty or sorted(path.step) != steps or path.asr.isna().any():
        return False
    evaluated = [SweepSpec.from_dict(store.run(r)["spec"]).prompts for r in path.run_id]
    return all(p == prompts for p in evaluated)


def left_at(path: pd.DataFrame) -> int | None:
    """The first checkpoint's step whose own ASR reached the threshold; None: never."""
    if path.empty:
        return None
    out = path[path.asr >= THRESHOLD].sort_values("step")
    return None if out.empty else int(out.step.iloc[0])
