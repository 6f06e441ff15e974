"""Benchmark: one sweep of the bundled model, locally and on Ray, in one run.

Three ways, each in a fresh process (as a user runs `sweep`) and a fresh store that
shares the converted model files:
1. locally, with 2 torch threads;
2. on Ray, 1 actor of 2 threads;
3. on Ray, 2 actors of 1 thread each.

The local Ray cluster is started before any timing, as ``sweep --ray`` starts it
(this machine's CPUs), and stays up for all three, so each way sees the same machine;
its start time is printed apart. Each wall time covers what a user waits for: the
process, its imports, the model load (in the actors, on Ray), directions and every
point; "sweep s" is sweep.run alone. Coherence is off in all three, so the same work
is timed. Verdicts and answers of (2) and (3) are compared with (1), prompt by prompt.

This 2-core VM's walls vary by 20-40% from one sweep to the next (the same local sweep
took 90 s and 137 s), so each way runs twice, in the order 1 2 3 3 2 1, which cancels
a drift, and each ratio uses each way's faster run (noise only ever adds time).

    python benchmarks/bench_ray.py [--config configs/bench-1d.yaml]

The last line reads:
``ray_overhead=<(2)/(1) wall ratio> two_actor_speedup=<(1)/(3)> differing_verdicts=<n>``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape_core import sweep  # noqa: E402
from landscape_core.spec.config import RuntimeSpec, SweepSpec  # noqa: E402
from landscape_core.store.runs import Store  # noqa: E402


@dataclass(frozen=True)
class Way:
    name: str
    runtime: RuntimeSpec


@dataclass(frozen=True)
class Timed:
    way: Way
    wall_s: float  # the child process, start to exit: what a user of `sweep` waits for
    sweep_s: float  # sweep.run alone, inside it
    run_id: str
    answers: pd.DataFrame  # idx, prompt_index, text, refused


def ways(base: RuntimeSpec) -> list[Way]:
    plain = dataclasses.replace(base, coherence=False)
    return [
        Way("local, 2 threads", dataclasses.replace(plain, executor="local", threads=2)),
        Way(
            "ray, 1 actor x 2 threads",
            dataclasses.replace(plain, executor="ray", ray_actors=1, threads=2),
        ),
        Way(
            "ray, 2 actors x 1 thread",
            dataclasses.replace(plain, executor="ray", ray_actors=2, threads=1),
        ),
    ]


def child(config: Path, way: int, address: str, store_dir: Path, models_dir: Path) -> None:
    """One way's sweep in a fresh process, as `sweep` runs it; answers to out.json."""
    spec = SweepSpec.from_yaml(config)
    runtime = ways(spec.runtime)[way].runtime
    if runtime.executor == "ray":  # the local way has no cluster to name
        runtime = dataclasses.replace(runtime, ray_address=address)
    store = Store.open(store_dir)
    if not store.models_dir.exists():
        store.models_dir.symlink_to(models_dir.resolve())
    t0 = time.monotonic()
    summary = sweep.run(dataclasses.replace(spec, runtime=runtime), store)
    sweep_s = time.monotonic() - t0
    answers = store.generations_frame(summary.run_id)[["idx", "prompt_index", "text", "refused"]]
    out = {"run_id": summary.run_id, "sweep_s": sweep_s, "answers": answers.to_dict("list")}
    (store_dir / "out.json").write_text(json.dumps(out))


def timed(config: Path, n: int, way: int, address: str, workdir: Path, models: Path) -> Timed:
    store_dir = workdir / f"sweep{n}"
    cmd = [sys.executable, __file__, "--config", str(config), "--models", str(models)]
    cmd += ["--_child", str(way), "--_address", address, "--_store", str(store_dir)]
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.monotonic() - t0
    out = json.loads((store_dir / "out.json").read_text())
    answers = pd.DataFrame(out["answers"]).sort_values(["idx", "prompt_index"])
    spec = SweepSpec.from_yaml(config)
    return Timed(
        ways(spec.runtime)[way], wall, out["sweep_s"], out["run_id"], answers.reset_index(drop=True)
    )


def differing(a: Timed, b: Timed, column: str) -> int:
    merged = a.answers.merge(b.answers, on=["idx", "prompt_index"], how="outer", indicator=True)
    missing = int((merged._merge != "both").sum())
    return missing + int((merged[f"{column}_x"] != merged[f"{column}_y"]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/bench-1d.yaml")
    parser.add_argument(
        "--models",
        type=Path,
        default=ROOT / "cache/models",
        help="where the bundled model's safetensors copy lives",
    )
    parser.add_argument("--_child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_address", help=argparse.SUPPRESS)
    parser.add_argument("--_store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child is not None:
        child(args.config, args._child, args._address, args._store, args.models)
        return

    import ray

    from landscape_core.engine.models import ensure_bundled_safetensors
    from landscape_core.executors.ray_pool import connect

    spec = SweepSpec.from_yaml(args.config)
    if spec.model.kind == "bundled":
        ensure_bundled_safetensors(args.models)  # not timed: every way loads this copy
    for path in args.models.rglob("*"):
        if path.is_file():
            path.read_bytes()  # into the page cache, so the first way pays no cold read
    t0 = time.monotonic()
    connect("")  # the local cluster `sweep --ray` starts: this machine's 2 CPUs
    cluster_s = time.monotonic() - t0
    address = ray.get_runtime_context().gcs_address  # each child joins it
    order = [0, 1, 2, 2, 1, 0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [
                timed(args.config, n, way, address, Path(tmp), args.models)
                for n, way in enumerate(order)
            ]
    finally:
        ray.shutdown()
    order_ways = ways(spec.runtime)[:3]

    by_way = {
        w.name: sorted((r for r in runs if r.way == w), key=lambda r: r.wall_s) for w in order_ways
    }
    results = [by_way[w.name][0] for w in order_ways]
    local, one_actor, two_actors = results
    n_points, n_prompts = local.answers.idx.nunique(), local.answers.prompt_index.nunique()
    print(f"config: {args.config}  points={n_points} prompts={n_prompts}")
    print(f"ray cluster start (not timed below): {cluster_s:.1f} s")
    print(
        f"{'way':<26} {'walls s':>13} {'sweep s':>13} {'s/point':>8} {'run id':>18} "
        f"{'diff verdicts':>14}"
    )
    for r in results:
        walls = "/".join(f"{x.wall_s:.1f}" for x in by_way[r.way.name])
        sweeps = "/".join(f"{x.sweep_s:.1f}" for x in by_way[r.way.name])
        print(
            f"{r.way.name:<26} {walls:>13} {sweeps:>13} {r.wall_s / n_points:>8.2f} "
            f"{r.run_id:>18} {differing(local, r, 'refused'):>14}"
        )
    others = [r for r in runs if r is not local]
    answers_differ = sum(differing(local, r, "text") for r in others)
    same_id = all(r.run_id == local.run_id for r in runs)
    print(f"differing_answers={answers_differ} same_run_id={same_id} (all {len(runs)} sweeps)")
    verdicts_differ = sum(differing(local, r, "refused") for r in others)
    print(
        f"ray_overhead={one_actor.wall_s / local.wall_s:.3f} "
        f"two_actor_speedup={local.wall_s / two_actors.wall_s:.3f} "
        f"differing_verdicts={verdicts_differ}"
    )


if __name__ == "__main__":
    main()
