"""A running job's clock for the Jobs page: time elapsed, and time left as work.

The time left prices the remaining points' answer slots (prompts x max_new_tokens)
at the job's own measured pace, blended with this machine's earlier points of the
model (``plan.pace``), and adds the coherence stage that follows the points. Jobs
whose run is not stored yet, that generate no answers, or that judge stored answers
(a rescore job) keep the points' pace (``store.jobs.remaining_seconds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.plan.pace import Remaining, blended_per_slot, coherence_per_answer, time_left
from landscape_core.spec.config import ANSWER_MEASURES
from landscape_core.store.jobs import Stage, remaining_seconds
from landscape_core.store.runs import Store


@dataclass(frozen=True)
class JobClock:
    elapsed: float | None  # seconds since the job started (None: not started)
    left: float | None  # seconds left (None: nothing measured yet)
    basis: str = ""  # what the time left is from, in words


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def job_clock(store: Store, job: Any, now: float) -> JobClock:
    """``job``: a row of ``store.jobs.frame()`` (done, total, stage, started, run_id...)."""
    elapsed = now - job.started if _known(job.started) else None
    started = job.points_started if _known(job.points_started) else None
    try:
        run = store.run(job.run_id) if _known(job.run_id) else None
    except UserError:  # queued or loading: the run's row is written once the model loads
        run = None
    judging = getattr(job, "kind", "sweep") == "rescore"  # generates nothing: its own pace
    if judging or run is None or run["spec"].get("measure", "answers") not in ANSWER_MEASURES:
        points = remaining_seconds(job.done, job.total, job.done_at_start, started, now)
        return JobClock(elapsed, points, "its points' pace" if points is not None else "")
    model, spec = run["provenance"]["model"], run["spec"]
    own = store.throughput.own(run["run_id"], started) if started is not None else None
    prior = store.throughput.history(model["fingerprint"], model["device"], before=started or now)
    per_slot = blended_per_slot(own, prior)
    if per_slot is None:
        return JobClock(elapsed, None)
    n_prompts = int(run["provenance"]["prompt_set"]["n_prompts"])
    coherent = spec.get("runtime", {}).get("coherence", True)
    left = Remaining(
        points=int(job.total - job.done),
        slots_per_point=n_prompts * int(spec["generation"]["max_new_tokens"]),
        coherence_answers=int(job.total) * n_prompts if coherent else 0,
    )
    last = max(own.last if own else 0.0, started or now)  # the last point, or the start
    seconds = time_left(
        left,
        per_slot,
        coherence_per_answer(int(model["n_params"]), per_slot, prior),
        since=now - last,
        measuring_coherence=job.stage == Stage.COHERENCE,
    )
    return JobClock(elapsed, seconds, _basis(own, prior))


def _basis(own: Any, prior: Any) -> str:
    parts = []
    if own is not None:
        parts.append(f"its {own.n_points} points")
    if prior is not None:
        parts.append(f"{prior.n_points} earlier points of this model here")
    return "from " + " and ".join(parts)
