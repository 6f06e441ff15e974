"""Identity: what names a run and a point, known without loading the model (or torch).

- A run is "this spec on these model files": ``plan`` hashes the spec's key fields
  with the model files' digests.
- A point is "these weights answering these inputs": ``point_key`` hashes everything
  that decides a point's generations, and only the directions with a non-zero
  coefficient, so points are shared between runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape_core.hashing import content_hash, sha256_file
from landscape_core.plan.model_files import Digest, fingerprint, model_files
from landscape_core.spec.config import (
    ANSWER_MEASURES,
    SPEC_VERSION,
    JudgeSpec,
    SweepSpec,
)
from landscape_core.spec.datasets import PromptSet, load_prompts
from landscape_core.spec.judges import entry
from landscape_core.spec.training_data import data_hash

COORD_DECIMALS = 9  # coordinates are rounded to 1e-9 for identity and for use


@dataclass(frozen=True)
class Plan:
    """What a sweep will compute."""

    spec: SweepSpec
    run_id: str
    model_files: dict[str, str]  # file name -> sha256
    model_fingerprint: str
    prompts: PromptSet
    targets: tuple[str, ...] = ()  # per direction: an interpolation target's fingerprint
    data: tuple[str, ...] = ()  # per direction: a gradient direction's data hash


@dataclass(frozen=True)
class Cell:
    """One grid position in snake order, before its point key is known."""

    i: int  # index along alpha
    j: int  # index along beta (0 in 1D)
    alpha: float
    beta: float
    rep: int = 0  # which landscape (seed) of a multi-direction run


def plan(spec: SweepSpec, digest: Digest = sha256_file) -> Plan:
    """Load the prompts and fingerprint the model files (``digest``: the store's memo)."""
    prompts = load_prompts(spec.prompts)
    files = model_files(spec.model, digest)
    model_hash = fingerprint(spec.model, files)
    targets = tuple(
        fingerprint(d.target, model_files(d.target, digest)) if d.target else ""
        for d in spec.directions
    )
    data = tuple(data_hash(d.data) if d.data else "" for d in spec.directions)
    identity = {"v": SPEC_VERSION, "spec": spec.key_dict(), "model": model_hash}
    if any(targets):  # an interpolation target is its files, wherever they live
        identity["targets"] = list(targets)
    if any(data):  # a gradient's data is its rows, wherever the file lives
        identity["data"] = list(data)
    run_id = content_hash(identity)
    return Plan(spec, run_id[:16], files, model_hash, prompts, targets, data)


def plane_key(p: Plan) -> str:
    """Names the weights a 2D run spans, whatever its grid, prompts or system prompt.

    It hashes the model's files and the two directions (an interpolation target by its
    files), so a finetune's path drawn on one run's plane shows on every run of it.
    """
    directions = [d.key_dict() for d in p.spec.directions]
    for d in directions:
        d.pop("target", None)  # named by its fingerprint in `targets`
    named = {"model": p.model_fingerprint, "directions": directions, "targets": list(p.targets)}
    if any(p.data):
        named["data"] = list(p.data)
    return content_hash(named)[:16]


def judge_label(spec: JudgeSpec, digest: Digest = sha256_file) -> str:
    """What a judge's scores are stored under.

    A text judge's name; for a model judge also its options and its model files'
    digests, so two classifiers in directories of the same name never share a label.
    """
    if entry(spec.name).kind != "model":
        return spec.name
    model = spec.model()
    files = model_files(model, digest)
    options = {k: v for k, v in spec.key_dict().items() if k != "path"}
    tag = content_hash({"judge": options, "model": fingerprint(model, files)})[:12]
    return f"{spec.name}:{Path(spec.path).name or 'bundled'}@{tag}"


def n_grid_points(spec: SweepSpec) -> int:
    """How many points the grid has (over all its directions), without building it.

    A basin search has no grid: this is then the most points its search can probe.
    """
    per_direction = (
        spec.basin.max_probes()
        if spec.measure == "basin-radius"
        else math.prod(axis.num for axis in spec.grid)
    )
    return per_direction * len(spec.replicates())


def grid_coords(start: float, stop: float, num: int) -> np.ndarray:
    """Grid coordinates along one axis, inclusive of both ends, as the reference.

    The paper's default is ``grid_coords(-0.5, 0.5, 21)``.
    """
    return np.linspace(start, stop, num)


def snake_grid(spec: SweepSpec) -> list[Cell]:
    """The grid in snake order: rows of beta, alpha reversing every row.

    A multi-direction run repeats the grid once per landscape (``rep``), in order.
    """
    axis = spec.grid[0]
    alphas = [round_coord(a) for a in grid_coords(axis.start, axis.stop, axis.num)]
    betas = [0.0]
    if spec.ndim == 2:
        axis = spec.grid[1]
        betas = [round_coord(b) for b in grid_coords(axis.start, axis.stop, axis.num)]
    cells = []
    for rep in range(len(spec.replicates())):
        for j, beta in enumerate(betas):
            row = list(enumerate(alphas))
            for i, alpha in reversed(row) if j % 2 else row:
                cells.append(Cell(i, j, alpha, beta, rep))
    return cells


def round_coord(x: float) -> float:
    """A coordinate as identity and the perturbation both use it."""
    return round(float(x), COORD_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def point_key(p: Plan, device: str, dtype: str, alpha: float, beta: float, rep: int = 0) -> str:
    """Hash of everything that decides a point's generations.

    Only directions with a non-zero coefficient enter, so the origin is shared by all
    runs of a model and prompts, and a 2D run's beta=0 row by the 1D run along d1.
    d2 is orthogonalised against d1, so d1 stays in the key whenever beta != 0. The
    directions are landscape ``rep``'s single-seed ones, so a multi-seed run's points
    are each seed's own run's points.
    """
    spec = p.spec
    directions = spec.replicates()[rep]
    if beta != 0.0:
        terms, coords = directions, [alpha, beta]
    elif alpha != 0.0:
        terms, coords = directions[:1], [alpha]
    else:
        terms, coords = (), []
    key = {
        "v": SPEC_VERSION,
        "model": p.model_fingerprint,
        "device": device,
        "dtype": dtype,
        "chat_format": spec.model.chat_format,
        "system_prompt": spec.system_prompt.key_dict(),
        "prompts": p.prompts.hash,
        "generation": spec.generation.key_dict(),
        "directions": [d.key_dict() for d in terms],
        "coords": coords,
    }
    if spec.measure not in ANSWER_MEASURES:
        key["measure"] = spec.measure
    if any(d.kind == "interpolation" for d in terms):
        key["weights"] = "lerp"  # exact at both ends; earlier points used base + alpha*d
        key["targets"] = [t for t in p.targets[: len(terms)] if t]
    if any(d.kind == "gradient" for d in terms):
        key["data"] = [h for h in p.data[: len(terms)] if h]
    return content_hash(key)


def grid_keys(p: Plan, device: str, dtype: str) -> set[str]:
    """The distinct points a grid run computes: its landscapes share their origin."""
    return {point_key(p, device, dtype, c.alpha, c.beta, c.rep) for c in snake_grid(p.spec)}
