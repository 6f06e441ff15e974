"""``trajectory ADAPTER``: a finetune's path over the plane of its landscape (Fig. 1B).

The plane is theta_0 (the finetune's base) + alpha*d1 + beta*d2, with d1 = theta_final -
theta_0 (the interpolation direction, so the finished finetune is alpha = 1, beta = 0)
and d2 a seeded random direction orthogonalised against d1 under its normalisation:
exactly the directions of a 2D interpolation x random sweep of that base, whose
config ``plane_spec`` returns. Each checkpoint is projected onto the plane
(``engine.projection``) and evaluated itself, as the one point of an ordinary run, so
its ASR is cached and shared like any other point.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from landscape_core import sweep
from landscape_core.engine.directions import Directions
from landscape_core.engine.models import load_model
from landscape_core.engine.perturb import unique_parameters
from landscape_core.engine.projection import project
from landscape_core.errors import UserError
from landscape_core.plan.checkpoints import Checkpoint, read_checkpoints
from landscape_core.plan.identity import plan, plane_key
from landscape_core.readers.results import at_origin
from landscape_core.spec.config import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSetSpec,
    SweepSpec,
)
from landscape_core.store.runs import Store

HELD_OUT = PromptSetSpec(source="advbench", start=0, limit=80)  # finetunes train on rows 100+
TOKENS = GenerationSpec(max_new_tokens=32, stop="verdict")  # the paper miniature's


@dataclass(frozen=True)
class TrajectoryPoint:
    """One checkpoint: where it is on the plane, how far off it, and its own ASR."""

    step: int
    loss: float
    alpha: float
    beta: float
    residual: float  # norm of the part off the plane
    relative_residual: float  # that part's share of the checkpoint's move from theta_0
    asr: float | None  # percent, keyword judge; None when not evaluated
    run_id: str  # the run that evaluated it ("" when not evaluated)


def base_model(adapter: Path) -> ModelSpec:
    """The model the adapter was trained from (its recipe.json says)."""
    try:
        recipe = json.loads((adapter / "recipe.json").read_text())
        base = ModelSpec.from_dict(recipe["spec"]["base"], where=f"{adapter}/recipe.json base")
    except (OSError, ValueError, KeyError):
        raise UserError(f"{adapter} is not a finished finetune (no readable recipe.json)") from None
    if base.adapter:
        raise UserError(
            f"{adapter} was trained on a model with an adapter of its own ({base.adapter}); "
            "a trajectory needs a base without one: merge it into the weights first"
        )
    return base


def plane_spec(adapter: Path, seed: int = 123, prompts: PromptSetSpec = HELD_OUT) -> SweepSpec:
    """The 2D sweep whose plane the trajectory is drawn on (alpha past both ends)."""
    base = base_model(adapter)
    return SweepSpec(
        label=f"trajectory plane: {adapter.name}",
        model=base,
        prompts=prompts,
        directions=(
            DirectionSpec(kind="interpolation", target=replace(base, adapter=str(adapter))),
            DirectionSpec(kind="random", seed=seed),
        ),
        grid=(AxisSpec(-0.25, 1.25, 7), AxisSpec(-0.5, 0.5, 5)),
        generation=TOKENS,
    )


def checkpoint_spec(plane: SweepSpec, checkpoint: Checkpoint) -> SweepSpec:
    """A checkpoint evaluated itself: one point, the base with its adapter."""
    model = replace(plane.model, adapter=checkpoint.path)
    return replace(
        plane, label=f"checkpoint step {checkpoint.step}", model=model,
        directions=(DirectionSpec(seed=plane.directions[1].seed),),
        grid=(AxisSpec(0.0, 0.0, 1),),
    )  # fmt: skip


def trajectory(
    adapter: Path,
    store: Store,
    seed: int = 123,
    prompts: PromptSetSpec = HELD_OUT,
    evaluate: bool = True,
    say: Callable[[str], None] = lambda message: None,
    on: Path | None = None,
) -> list[TrajectoryPoint]:
    """Every checkpoint's coordinates, residual and (with ``evaluate``) ASR.

    ``on`` draws them on another finetune's plane (same base), so two finetunes share
    one landscape; its d1 is that finetune's move, so these checkpoints' residuals say
    how far their path leaves it. The result is stored for the plane's run.
    """
    adapter = Path(adapter).expanduser().resolve()
    checkpoints = read_checkpoints(adapter)
    plane = plane_spec(Path(on or adapter).expanduser().resolve(), seed, prompts)
    if base_model(adapter) != plane.model:
        raise UserError(f"{adapter} and {on} were trained from different models: no shared plane")
    on_cpu = replace(plane.model, device="cpu", dtype="float32")
    base = _weights(on_cpu, store)
    directions = Directions(plane.directions, base, store.models_dir, cache=True)
    out = []
    for checkpoint in checkpoints:
        at = project(
            directions, base, _weights(replace(on_cpu, adapter=checkpoint.path), store).__getitem__
        )
        asr, run_id = None, ""
        if evaluate:
            summary = sweep.run(checkpoint_spec(plane, checkpoint), store)
            run_id = summary.run_id
            asr = float(at_origin(store.points_frame(run_id)).asr.iloc[0])
        shown = "" if asr is None else f" ASR {asr:.1f}"
        say(f"step {checkpoint.step}: alpha {at.alpha:+.3f} beta {at.beta:+.3f} "
            f"off-plane {at.relative_residual:.1%}{shown}")  # fmt: skip
        out.append(TrajectoryPoint(checkpoint.step, checkpoint.loss, at.alpha, at.beta,
                                   at.residual, at.relative_residual, asr, run_id))  # fmt: skip
    key = plane_key(plan(plane, store.file_digest))
    store.trajectories.save(key, str(adapter), [dataclasses.asdict(p) for p in out])
    return out


def _weights(model: ModelSpec, store: Store) -> dict[str, torch.Tensor]:
    """A model's unique parameters by name (loaded on the CPU in float32)."""
    loaded = load_model(model, store.models_dir).model
    return {name: p.detach() for name, p in unique_parameters(loaded).items()}


def as_json(plane: SweepSpec, adapter: Path, points: list[TrajectoryPoint]) -> dict[str, Any]:
    """What ``trajectory --json`` prints: the plane's config and every checkpoint."""
    return {
        "adapter": str(adapter),
        "plane": plane.to_dict(),
        "checkpoints": [dataclasses.asdict(p) for p in points],
    }
