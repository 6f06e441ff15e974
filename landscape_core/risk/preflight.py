"""The verb ``risk``: a finetuning risk preflight, run before any training.

``lookahead`` (the default): k real optimizer steps of the user's recipe in a
throwaway copy (``risk.lookahead``); the report is kept under ``STORE/risk/`` by the
model, the data's rows, the recipe and the probes, so the page lists it and a second
call answers from it.

``run`` (``risk --edge``, the old measure kept as a baseline): the two basin searches
(``risk.spec``) through ``sweep.run``, then their report (``risk.report``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.files import atomic_write_text
from landscape_core.hashing import content_hash
from landscape_core.plan.model_files import fingerprint, model_files
from landscape_core.risk.report import RiskReport, report
from landscape_core.risk.spec import (
    DEFAULTS,
    LookaheadReport,
    Probes,
    RiskSettings,
    risk_sweeps,
)
from landscape_core.spec.config import ModelSpec, TrainingDataSpec
from landscape_core.spec.training_data import data_hash
from landscape_core.store.runs import Store


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


PROBES = Probes()
REPORTS = "risk"  # STORE/risk/<key>.json: the lookahead reports


def lookahead(
    data: TrainingDataSpec,
    store: Store,
    model: ModelSpec = DEFAULTS.model,
    recipe: dict[str, Any] | None = None,
    probes: Probes = PROBES,
    say: Callable[[str], None] = lambda message: None,
) -> LookaheadReport:
    """The lookahead of ``recipe`` (``FinetuneSpec`` fields) on ``data``, stored once."""
    recipe = dict(recipe or {})
    fields = {**recipe, "base": model.to_dict(), **_data_fields(data)}
    weights = fingerprint(model, model_files(model, store.file_digest))  # as runs key it
    key = content_hash({"model": model.key_dict(), "weights": weights, "data": data_hash(data),
                        "recipe": recipe, "probes": dataclasses.asdict(probes)})[:16]  # fmt: skip
    path = store.root / REPORTS / f"{key}.json"
    if path.is_file():
        say(f"a stored preflight of these data, model and recipe: {path.name}")
        return LookaheadReport.from_dict(json.loads(path.read_text()))
    from landscape_core.risk import lookahead as engine  # torch

    say(f"{data.display_name}: {probes.steps} steps of the recipe in a throwaway copy")
    references = store.root / REPORTS / "references"
    out = engine.preflight(fields, store.models_dir, probes, references, weights, say)
    out = dataclasses.replace(out, extra={**out.extra, "data": data.display_name,
                                          "model": model.to_dict(), "recipe": recipe})  # fmt: skip
    atomic_write_text(path, json.dumps(out.to_dict(), indent=2))
    return out


def _data_fields(data: TrainingDataSpec) -> dict[str, Any]:
    """A data spec as ``FinetuneSpec`` fields: the recipe and its shots, or the file."""
    if data.recipe == "file":
        return {"recipe": "file", "data": data.path}
    return {"recipe": data.recipe, "shots": data.shots}
