"""Queue a sweep for the worker, its run id known now: what the CLI and the app submit.

Naming the run is identity (``spec.identity.plan``), queueing is the store's; this joins
the two so the store only keeps rows. The app selects the run at once, so "View" on a
job launched a second ago opens the new run (announced as pending), never the one
viewed before. Torch-free: the pages call it.
"""

from __future__ import annotations

from landscape_core.spec.config import SweepSpec
from landscape_core.spec.identity import plan
from landscape_core.store.records import Queued
from landscape_core.store.runs import Store


def submit(store: Store, spec: SweepSpec) -> Queued:
    """Queue ``spec`` on ``store``'s job queue with the run id it will compute."""
    run_id = plan(spec, store.file_digest).run_id
    return Queued(store.jobs.submit(spec.to_dict(), spec.label, run_id), run_id)
