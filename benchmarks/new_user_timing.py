"""Estimated against actual time, as a new user meets them (issue 32): prints, asserts nothing.

On a fresh data directory: the Start page's first run (``spec.first_run``), then the
same run over 3 directions. Each is queued with ``submit`` and run by a worker process,
as the app does. Printed per run: the preflight's estimate before submitting, the actual
time from submit to done, their ratio, and the Jobs page's time left
(``readers.progress.job_clock``) against the time that was really left, when 25%, 50%
and 75% of the points are stored.

    .venv/bin/python benchmarks/new_user_timing.py [--store DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape_core.plan.preflight import preflight  # noqa: E402
from landscape_core.readers.progress import job_clock  # noqa: E402
from landscape_core.spec.first_run import first_run  # noqa: E402
from landscape_core.store.runs import Store  # noqa: E402
from landscape_core.submit import submit  # noqa: E402

MARKS = (0.25, 0.5, 0.75)


def timed(store: Store, spec, name: str) -> None:
    """Queue ``spec``, let a worker run it, and print the estimate against the clock."""
    estimate = preflight(
        spec,
        store.root,
        measured=store.measured_pace(spec),
        to_compute=store.points_to_compute(spec),
    )  # as the Start and Launch pages estimate it
    start = time.time()
    job_id = submit(store, spec).job_id
    worker = subprocess.Popen(
        [sys.executable, "-m", "landscape_core", "worker", "--store", str(store.root),
         "--idle-timeout", "5"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    said: dict[float, tuple[float, float | None, str]] = {}
    while True:
        jobs = store.jobs.frame()
        row = next(r for r in jobs.itertuples() if r.job_id == job_id)
        now = time.time()
        for mark in MARKS:
            if mark not in said and row.total and row.done / row.total >= mark:
                clock = job_clock(store, row, now)
                said[mark] = (now, clock.left, clock.basis)
        if row.status in ("done", "failed", "cancelled"):
            break
        time.sleep(1.0)
    end = time.time()
    worker.wait(timeout=120)
    actual = end - start
    print(f"\n{name}: {row.status}, {row.total} points")
    low, high = estimate.seconds, estimate.upper or estimate.seconds
    middle = (low * high) ** 0.5  # a range (a first guess) is read at its geometric middle
    inside = "" if low == high else f", inside the range: {low <= actual <= high}"
    print(f"  estimate {low:.0f}-{high:.0f} s ({estimate.basis()}), actual {actual:.0f} s, "
          f"actual/estimate {actual / middle:.2f}{inside}")  # fmt: skip
    for mark, (when, left, basis) in sorted(said.items()):
        really = end - when
        shown = "none" if left is None else f"{left:.0f} s"
        ratio = "" if left is None or really <= 0 else f", shown/real {left / really:.2f}"
        print(f"  at {mark:.0%}: time left shown {shown}, really {really:.0f} s{ratio} ({basis})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None, help="default: a new temp dir")
    args = parser.parse_args()
    root = args.store or Path(tempfile.mkdtemp(prefix="new-user-"))
    store = Store.open(root)
    print(f"data directory: {root}")
    spec = first_run(root)
    timed(store, spec, "the first run (Start's button)")
    three = dataclasses.replace(
        spec,
        directions=(dataclasses.replace(spec.directions[0], seeds=(), repeats=3),),
        label="three directions",
    )
    timed(store, three, "the same over 3 directions")


if __name__ == "__main__":
    main()
