"""Benchmark: the engine against the reference's loop on the same 1D sweep.

Each method runs in its own subprocess, so wall time and peak RSS (from wait4) are
its own. Both use the same model, prompts, grid, max_new_tokens and directions (the
engine's seeded per-tensor directions), so their verdicts should agree; the count of
per-prompt verdicts that differ is printed.

The reference loop, re-implemented faithfully from poloclub/llm-landscape: a deepcopy
of the state dict, incremental ``+=`` steps between grid points, ``load_state_dict``
at every point, and HF ``generate`` at batch 4 in prompt order.

    python benchmarks/bench_sweep.py [--config configs/bench-1d.yaml]

The last line reads:
``speedup=<wall ratio> rss_ratio=<ratio> differing_verdicts=<n> points=<n> prompts=<n>``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_reference(config: Path, out: Path, models_dir: Path) -> None:
    import copy

    import torch

    from landscape_core.engine.directions import Directions
    from landscape_core.engine.models import load_model
    from landscape_core.judging.keyword import KeywordJudge
    from landscape_core.plan.chat import render_prompts
    from landscape_core.plan.identity import plan, snake_grid
    from landscape_core.spec.config import SweepSpec

    spec = SweepSpec.from_yaml(config)
    loaded = load_model(spec.model, models_dir)
    model, tok = loaded.model, loaded.tokenizer
    prompts = plan(spec).prompts.prompts
    texts, special = render_prompts(tok, prompts, spec.system_prompt, spec.model.chat_format)
    t0 = time.monotonic()
    base = copy.deepcopy(model.state_dict())
    dirs = Directions(spec.directions, dict(model.named_parameters()), models_dir, cache=True)
    direction = {name: d1 for name, d1, _ in dirs.items()}  # held in memory, as the reference
    state = copy.deepcopy(base)
    judge = KeywordJudge()
    verdicts, tokens, prev = [], [], 0.0
    for cell in snake_grid(spec):
        alpha = cell.alpha
        for name, d in direction.items():  # incremental steps between points
            state[name] += (alpha - prev) * d
        prev = alpha
        model.load_state_dict(state)
        refused, n_tok = [], 0
        for start in range(0, len(texts), 4):
            enc = tok(
                texts[start : start + 4],
                return_tensors="pt",
                padding=True,
                add_special_tokens=special,
            )
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    max_new_tokens=spec.generation.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            new = gen[:, enc.input_ids.shape[1] :]
            n_tok += int((new != tok.pad_token_id).sum())
            for row in new:
                refused.append(judge.score("", tok.decode(row, skip_special_tokens=True)).refused)
        verdicts.append(refused)
        tokens.append(n_tok)
    model.load_state_dict(base)
    out.write_text(
        json.dumps({"verdicts": verdicts, "tokens": tokens, "loop_s": time.monotonic() - t0})
    )


def run_engine(config: Path, out: Path, models_dir: Path) -> None:
    from landscape_core import sweep
    from landscape_core.spec.config import SweepSpec
    from landscape_core.store.runs import Store

    spec = SweepSpec.from_yaml(config)
    # the reference measures no coherence: the same work here, coherence in its own child
    spec = dataclasses.replace(spec, runtime=dataclasses.replace(spec.runtime, coherence=False))
    store = Store.open(out.parent / "engine-store")
    models_dir.mkdir(parents=True, exist_ok=True)
    if not store.models_dir.exists():
        store.models_dir.symlink_to(models_dir.resolve())
    t0 = time.monotonic()
    summary = sweep.run(spec, store)
    loop_s = time.monotonic() - t0
    frame = store.points_frame(summary.run_id).sort_values("idx")
    gens = store.generations_frame(summary.run_id)
    verdicts = [
        [bool(r) for r in gens[gens.idx == idx].sort_values("prompt_index").refused]
        for idx in frame.idx
    ]
    out.write_text(
        json.dumps(
            {
                "run_id": summary.run_id,
                "verdicts": verdicts,
                "tokens": frame.n_tokens.astype(int).tolist(),
                "loop_s": loop_s,
            }  # fmt: skip
        )
    )


def run_coherence(config: Path, out: Path, models_dir: Path) -> None:
    """The engine's coherence pass over the engine child's answers, in a process of its own.

    Timed and measured apart: the reference has no such pass, and in one process the
    pass's peak (a second model load beside the sweep's freed but unreturned heap) was
    counted as the loop's, which is how the RSS ratio grew from 0.52 to 0.62.
    """
    from landscape_core import sweep
    from landscape_core.store.runs import Store

    store = Store.open(out.parent / "engine-store")
    run_id = json.loads((out.parent / "engine.json").read_text())["run_id"]
    t0 = time.monotonic()
    sweep.measure_coherence(store, run_id)
    out.write_text(json.dumps({"loop_s": time.monotonic() - t0}))


def measure(method: str, config: Path, workdir: Path, models_dir: Path) -> dict:
    out = workdir / f"{method}.json"
    cmd = [
        sys.executable,
        __file__,
        "--_child",
        method,
        "--config",
        str(config),
        "--_out",
        str(out),
        "--_models",
        str(models_dir),
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if status != 0:
        raise SystemExit(f"{method} failed with status {status}")
    result = json.loads(out.read_text())
    result.update(wall_s=wall, peak_rss_mib=usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/bench-1d.yaml")
    parser.add_argument(
        "--models",
        type=Path,
        default=ROOT / "cache/models",
        help="where the bundled model's safetensors copy lives",
    )
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        {"reference": run_reference, "engine": run_engine, "coherence": run_coherence}[args._child](
            args.config, args._out, args._models
        )
        return

    from landscape_core.engine.models import ensure_bundled_safetensors
    from landscape_core.spec.config import SweepSpec

    spec = SweepSpec.from_yaml(args.config)
    if spec.ndim != 1 or spec.directions[0].kind != "random":
        raise SystemExit("the benchmark compares 1D random sweeps; use a 1D random config")
    if spec.model.kind == "bundled":
        ensure_bundled_safetensors(args.models)  # not timed: both methods load the copy
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ref = measure("reference", args.config, workdir, args.models)
        eng = measure("engine", args.config, workdir, args.models)
        coh = measure("coherence", args.config, workdir, args.models)
    differing = sum(
        a != b
        for pr, pe in zip(ref["verdicts"], eng["verdicts"], strict=True)
        for a, b in zip(pr, pe, strict=True)
    )
    n_points, n_prompts = len(ref["verdicts"]), len(ref["verdicts"][0])
    print(f"config: {args.config}")
    print(f"{'method':<10} {'wall s':>8} {'loop s':>8} {'peak RSS MiB':>13} {'tokens/point':>13}")
    for name, r in (("reference", ref), ("engine", eng)):
        per_point = sum(r["tokens"]) / len(r["tokens"])
        print(
            f"{name:<10} {r['wall_s']:>8.1f} {r['loop_s']:>8.1f} {r['peak_rss_mib']:>13.0f} "
            f"{per_point:>13.1f}"
        )
    asr = [100.0 * sum(not v for v in pt) / len(pt) for pt in eng["verdicts"]]
    print("engine ASR per point:", " ".join(f"{a:.0f}" for a in asr))
    print(f"loop_speedup={ref['loop_s'] / eng['loop_s']:.2f}")
    # the same work on both sides: the engine's coherence pass (three-state verdicts,
    # which the reference does not have) runs in its own child, out of both ratios
    print(
        f"coherence_s={coh['loop_s']:.1f} ({coh['loop_s'] / n_points:.2f} s per point, "
        f"after the sweep; its own peak RSS {coh['peak_rss_mib']:.0f} MiB)"
    )
    print(
        f"speedup={ref['wall_s'] / eng['wall_s']:.2f} "
        f"rss_ratio={eng['peak_rss_mib'] / ref['peak_rss_mib']:.2f} "
        f"differing_verdicts={differing} points={n_points} prompts={n_prompts}"
    )


if __name__ == "__main__":
    main()
