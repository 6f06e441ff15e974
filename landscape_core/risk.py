"""The verb ``risk``: a finetuning risk preflight, run before any training.

It runs the preflight's two basin searches (``spec.risk``) through ``sweep.run``, so
their probes are ordinary cached points and a second preflight of the same model
reuses the random band, then reads the report (``readers.risk``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.readers.risk import RiskReport, report
from landscape_core.spec.config import TrainingDataSpec
from landscape_core.spec.risk import DEFAULTS, RiskSettings, risk_sweeps
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
