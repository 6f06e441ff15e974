"""Soak: kill -9 the worker again and again during a sweep; nothing may be lost or doubled.

A 2D sweep of a tiny in-process model runs as a job. The worker is started, killed with
SIGKILL at a random moment, and started again, ``--kills`` times; then it finishes the
job. The store is then checked against a clean run of the same spec in another store:
every point present once, every answer the same.

    python benchmarks/soak_worker.py [--kills 50] [--seed 0]

The last line reads ``kills=N lost=0 duplicated=0`` (plus the points compared).
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import build_tiny_model  # noqa: E402  (the tests' tiny model)

from landscape_core import sweep  # noqa: E402
from landscape_core.spec.config import SweepSpec  # noqa: E402
from landscape_core.store.runs import Store  # noqa: E402
from landscape_core.worker import serve  # noqa: E402


def answers(store: Store, run_id: str) -> dict[tuple[float, float, int], str]:
    gens = store.generations_frame(run_id)
    return {(r.alpha, r.beta, r.prompt_index): r.text for r in gens.itertuples()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_model(tmp / "model")
        spec = SweepSpec.from_dict(
            {
                "model": {"kind": "local", "path": str(model)},
                "prompts": {"source": "advbench", "limit": 3},
                "directions": [{"seed": 1}, {"seed": 2}],
                "grid": [{"num": 30}, {"num": 30}],
                "generation": {"max_new_tokens": 48},
                "runtime": {"batch_size": 3},
            }
        )
        clean = Store.open(tmp / "clean")
        run_id = sweep.run(spec, clean).run_id
        soak = Store.open(tmp / "soak")
        kills = mid_point = 0
        cmd = [sys.executable, "-m", "landscape_core", "worker", "--store", str(soak.root)]
        while kills < args.kills:
            if soak.jobs.frame().query("status in ['queued', 'running']").empty:
                soak.jobs.submit(spec.to_dict(), "soak")  # a fresh job: the crash count resets
            before = len(soak.points_frame(run_id).dropna(subset=["status"]))
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(rng.uniform(3.5, 7.0))  # the worker needs ~3.5 s to import and load
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            after = len(soak.points_frame(run_id).dropna(subset=["status"]))
            mid_point += after > before
            frame = soak.jobs.frame()
            for job in frame[frame.status == "interrupted"].itertuples():
                if soak.jobs.resume(int(job.job_id)) == "failed":
                    soak.jobs.submit(spec.to_dict(), "soak")
            print(f"kill {kills}: {after} of {spec.grid[0].num * spec.grid[1].num} points")
        for job in soak.jobs.frame().itertuples():
            if job.status == "interrupted":
                soak.jobs.resume(int(job.job_id))
        if soak.jobs.frame().query("status == 'queued'").empty:
            soak.jobs.submit(spec.to_dict(), "soak")
        serve(soak, exit_when_idle=True)
        want, got = answers(clean, run_id), answers(soak, run_id)
        with sqlite3.connect(soak.path) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
            points = conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        lost = len(set(want) - set(got))
        duplicated = rows - len(got)
        differing = sum(want[k] != got[k] for k in set(want) & set(got))
        print(
            f"points={points} answers={rows} differing={differing} "
            f"kills_that_landed_mid_sweep={mid_point}"
        )
        print(f"kills={kills} lost={lost} duplicated={duplicated}")
        if lost or duplicated or differing:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
