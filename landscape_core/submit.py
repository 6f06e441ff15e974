"""Queue a job for the worker, its run id known now: what the CLI and the app submit.

A sweep (``submit``), or a stored run judged again by one judge (``submit_rescore``).

Naming the run is identity (``plan.identity.plan``), queueing is the store's; this joins
the two so the store only keeps rows. The app selects the run at once, so "View" on a
job launched a second ago opens the new run (announced as pending), never the one
viewed before. Torch-free: the pages call it.
"""

from __future__ import annotations

from landscape_core.plan.identity import plan
from landscape_core.spec.config import JudgeSpec, RescoreSpec, SweepSpec
from landscape_core.spec.judges import entry
from landscape_core.store.records import Queued
from landscape_core.store.runs import Store


def submit(store: Store, spec: SweepSpec) -> Queued:
    """Queue ``spec`` on ``store``'s job queue with the run id it will compute."""
    run_id = plan(spec, store.file_digest).run_id
    return Queued(store.jobs.submit(spec.to_dict(), spec.label, run_id), run_id)


def submit_rescore(store: Store, run_id: str, judge: JudgeSpec) -> Queued:
    """Queue a rescore job: the worker judges ``run_id``'s stored answers with ``judge``.

    Checked now (the run exists and stored answers this judge can read), so the page or
    the CLI says what is wrong at once; the model judge's model loads in the worker.
    """
    run = store.run(run_id)
    asked = RescoreSpec(run["run_id"], judge)
    asked.check(run["spec"])
    title = run["label"] or run["run_id"]
    label = f"{title} · judge {entry(judge.name).name}"
    return Queued(store.jobs.submit(asked.to_dict(), label, asked.run_id, "rescore"), asked.run_id)
