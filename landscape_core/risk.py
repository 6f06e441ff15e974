"""The verb ``risk``: a finetuning risk preflight, run before any training.

It runs the preflight's two basin searches (``spec.risk``) through ``sweep.run``, so
their probes are ordinary cached points and a second preflight of the same model
reuses the random band, then reads the report (``readers.risk``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.readers.risk import RiskReport, report
from landscape_core.spec.config import ModelSpec, TrainingDataSpec
from landscape_core.spec.risk import DEFAULTS, RiskSettings, risk_sweeps
from landscape_core.store.runs import Store

RECIPES = ("harmful", "mix", "align")


def data_spec(data: str, shots: int = 0) -> TrainingDataSpec:
    """A recipe name with its shots, or a CSV/JSONL of prompt/answer pairs."""
    if data in RECIPES:
        return TrainingDataSpec(recipe=data, shots=shots)
    path = Path(data).expanduser()
    if not path.is_file():
        raise UserError(
            f"{data} is neither a recipe ({', '.join(RECIPES)}) nor a file; give a recipe "
            "with --shots K, or a CSV with columns prompt and answer"
        )
    if shots:
        raise UserError("--shots is for the recipes; a file's pairs are all used")
    return TrainingDataSpec(recipe="file", path=str(path.resolve()))


def model_spec(path: str) -> ModelSpec:
    """``--model``: a local model directory or GGUF file; empty is the aligned demo."""
    if not path:
        return DEFAULTS.model
    kind = "gguf" if path.lower().endswith(".gguf") else "local"
    return ModelSpec(kind=kind, path=str(Path(path).expanduser().resolve()))


def run(
    data: TrainingDataSpec,
    store: Store,
    settings: RiskSettings = DEFAULTS,
    say: Callable[[str], None] = lambda message: None,
    ray: str | None = None,
) -> RiskReport:
    """Both searches (resumed from the store), then the report."""
    sweeps = risk_sweeps(data, settings)
    ids = {}
    for name, spec in (("gradient", sweeps.gradient), ("random", sweeps.random)):
        if ray is not None:
            runtime = dataclasses.replace(spec.runtime, executor="ray", ray_address=ray)
            spec = dataclasses.replace(spec, runtime=runtime)
        say(f"{spec.label}: searching the basin's edges")
        summary = sweep.run(spec, store)
        if summary.status != "complete":
            raise UserError(
                f"{spec.label} ended {summary.status}; run the same command to resume it"
            )
        say(f"  run {summary.run_id}: {summary.computed} probe(s) computed "
            f"in {summary.seconds:.0f} s")  # fmt: skip
        ids[name] = summary.run_id
    return report(store, ids["gradient"], ids["random"])
