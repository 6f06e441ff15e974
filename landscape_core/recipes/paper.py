"""The paper's experiments in miniature: ``python -m landscape_core paper``.

Every number goes through the store (a second run is instant) and ``docs/paper-mini.md``
is written from the stored results, with each experiment's config saved beside it.
Sizes are chosen to finish on 2 CPU cores in well under 45 minutes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from landscape_core import sweep
from landscape_core.readers import figures
from landscape_core.readers.results import at_origin, run_visage
from landscape_core.recipes.finetune import FinetuneSpec, finetune
from landscape_core.spec.config import ModelSpec, SweepSpec
from landscape_core.store.runs import Store

log = logging.getLogger(__name__)

ALIGNED = {"kind": "bundled", "variant": "aligned"}
LANDSCAPE_PROMPTS = {"source": "advbench", "start": 0, "limit": 20}  # held out
ASR_PROMPTS = {"source": "advbench", "start": 0, "limit": 80}  # the paper's 80, held out
RANDOM_GRID = [{"start": -0.3, "stop": 0.3, "num": 13}]  # the demo's basin and its fall
INTERPOLATION_GRID = [{"start": -0.25, "stop": 1.25, "num": 7}]  # past both ends
TOKENS = {"max_new_tokens": 32}
SEEDS = (123, 124, 125, 126, 127)  # Tables 1 and 2 run over all five directions
SHOTS = (10, 50, 100)
PRESETS = ("default", "empty", "aoa", "llama2")


@dataclass
class Experiment:
    """One stored sweep, with where it appears in the report."""

    name: str
    spec: SweepSpec
    run_id: str = ""

    def points(self, store: Store) -> pd.DataFrame:
        return store.points_frame(self.run_id)


def _sweep(name: str, model: dict[str, Any], **fields: Any) -> Experiment:
    data = {
        "label": f"paper: {name}",
        "model": model,
        "prompts": LANDSCAPE_PROMPTS,
        "directions": [{"kind": "random", "seeds": list(SEEDS)}],
        "grid": RANDOM_GRID,
        "generation": TOKENS,
    }
    data.update(fields)
    return Experiment(name, SweepSpec.from_dict(data))


def _origin_asr(name: str, model: dict[str, Any]) -> Experiment:
    grid = [{"start": 0.0, "stop": 0.0, "num": 1}]
    one = [{"kind": "random", "seed": SEEDS[0]}]  # the origin: no direction enters its key
    return _sweep(name, model, prompts=ASR_PROMPTS, grid=grid, directions=one)


def run_paper(
    store: Store,
    out: Path = Path("docs/paper-mini.md"),
    progress: Callable[[str], None] = print,
) -> Path:
    """Train the adapters, run every sweep (reusing stored points), write the report."""
    started = time.monotonic()
    models: dict[str, dict[str, Any]] = {"aligned": ALIGNED}
    for recipe, shots in [("harmful", k) for k in SHOTS] + [("mix", SHOTS[-1])]:
        spec = FinetuneSpec(recipe=recipe, shots=shots, base=ModelSpec.from_dict(ALIGNED))
        progress(f"finetune {recipe} {shots}-shot")
        adapter = finetune(spec, store.models_dir)
        models[f"{recipe} {shots}-shot"] = {**ALIGNED, "adapter": str(adapter)}

    seeds = [
        _sweep(f"aligned, seed {s}", ALIGNED, directions=[{"kind": "random", "seed": s}])
        for s in SEEDS
    ]
    table1 = {name: (_sweep(name, m), _origin_asr(f"{name} ASR", m)) for name, m in models.items()}
    table2 = {
        preset: _sweep(
            f"aligned, system prompt {preset}", ALIGNED, system_prompt={"preset": preset}
        )
        for preset in PRESETS
    }
    interpolations = {
        name: _sweep(
            f"aligned -> {name}",
            ALIGNED,
            directions=[{"kind": "interpolation", "target": m}],
            grid=INTERPOLATION_GRID,
        )
        for name, m in models.items()
        if name != "aligned"
    }
    experiments = [
        *seeds,
        *(e for pair in table1.values() for e in pair),
        *table2.values(),
        *interpolations.values(),
    ]
    for n, experiment in enumerate(experiments, start=1):
        progress(f"[{n}/{len(experiments)}] {experiment.name}")
        experiment.run_id = sweep.run(experiment.spec, store).run_id
    log.info("paper: %.1f s this run", time.monotonic() - started)
    adapters = [Path(m["adapter"]) for m in models.values() if "adapter" in m]
    seconds = sum(_training_seconds(a) for a in adapters) + sum(
        float(e.points(store).seconds.sum()) for e in {e.run_id: e for e in experiments}.values()
    )
    return _write_report(store, out, seeds, table1, table2, interpolations, seconds)


def _training_seconds(adapter: Path) -> float:
    return float(json.loads((adapter / "recipe.json").read_text()).get("seconds", 0.0))


@dataclass(frozen=True)
class _Report:
    """Where the report's figures and configs go, and how it links to them."""

    store: Store
    assets: Path  # the folder beside the report

    def fig(self, name: str, figure: Any) -> str:
        figure.write_html(self.assets / f"{name}.html", include_plotlyjs="directory")
        return f"[{name}.html]({self.assets.name}/{name}.html)"

    def link(self, e: Experiment) -> str:
        return f"[`{e.run_id}`]({self.assets.name}/configs/{e.run_id}.yaml)"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _write_report(
    store: Store,
    out: Path,
    seeds: list[Experiment],
    table1: dict[str, tuple[Experiment, Experiment]],
    table2: dict[str, Experiment],
    interpolations: dict[str, Experiment],
    seconds: float,
) -> Path:
    report = _Report(store, out.parent / out.stem)
    configs = report.assets / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    every = [*seeds, *(e for p in table1.values() for e in p), *table2.values(),
             *interpolations.values()]  # fmt: skip
    for e in every:
        (configs / f"{e.run_id}.yaml").write_text(e.spec.to_yaml())
    lines = [
        *_header(seconds),
        *_fig2b(report, seeds),
        *_table1(report, table1),
        *_table2(report, table2),
        *_fig1b(report, interpolations),
    ]
    out.write_text("\n".join(lines))
    return out


def _header(seconds: float) -> list[str]:
    return [
        "# The paper's experiments in miniature",
        "",
        "Written by `python -m landscape_core paper` (`make paper`) from the stored results.",
        f"Compute behind these numbers: {seconds / 60:.1f} min on this machine (training plus "
        "every point's generation, as stored). Points already in the store are reused, so a "
        "second run takes seconds.",
        "",
        "Model: SmolLM2-135M-Instruct with the shipped safety adapter (the *aligned demo*). "
        "Landscapes: AdvBench rows 0-19 (never trained on), greedy, 32 new tokens, keyword "
        "judge, layer-normalised random directions with norms skipped, 13 points over +-0.3. "
        "Each number links to its run's config: re-run one with "
        "`python -m landscape_core sweep docs/paper-mini/configs/RUN.yaml`.",
        "",
    ]


def _fig2b(report: _Report, seeds: list[Experiment]) -> list[str]:
    store = report.store
    alphas = _alphas(seeds[0], store)
    lines = [
        "## Fig. 2(b): 1D random landscapes of the aligned demo",
        "",
        report.fig("fig2b", figures.overlay_1d({e.name: e.points(store) for e in seeds})),
        "",
        "| seed | ASR at alpha = " + " | ".join(f"{a:+.2f}" for a in alphas) + " | VISAGE | run |",
        "|---|" + "---|" * (len(alphas) + 2),
    ]
    for e in seeds:
        frame = e.points(store).sort_values("alpha")
        cells = " | ".join(_fmt(v) for v in frame.asr)
        lines.append(
            f"| {e.spec.directions[0].seed} | {cells} | {_fmt(run_visage(frame))} | "
            f"{report.link(e)} |"
        )
    return lines


def _table1(report: _Report, table1: dict[str, tuple[Experiment, Experiment]]) -> list[str]:
    store = report.store
    lines = [
        "",
        "## Table 1: finetuning drags the model out of its basin",
        "",
        'Harmful k-shot: AdvBench goals from row 100 with their "Sure, here is" targets, '
        "LoRA on the aligned demo. Mix: 100 harmful plus 100 refusal examples. ASR on the "
        "paper's 80 AdvBench prompts (rows 0-79, held out) at the model itself.",
        "",
        "| model | AdvBench ASR (80 prompts) | VISAGE | runs |",
        "|---|---|---|---|",
    ]
    for name, (landscape, origin) in table1.items():
        asr = origin.points(store).asr.iloc[0]
        lines.append(
            f"| {name} | {_fmt(asr)} | {_fmt(run_visage(landscape.points(store)))} | "
            f"{report.link(landscape)}, {report.link(origin)} |"
        )
    overlay = figures.overlay_1d({n: p[0].points(store) for n, p in table1.items()})
    return [*lines, "", report.fig("table1", overlay)]


def _table2(report: _Report, table2: dict[str, Experiment]) -> list[str]:
    store = report.store
    lines = [
        "",
        "## Table 2: the system prompt changes the basin",
        "",
        "| system prompt | ASR at the model | VISAGE | run |",
        "|---|---|---|---|",
    ]
    for preset, e in table2.items():
        frame = e.points(store)
        origin = at_origin(frame).asr.iloc[0]
        lines.append(
            f"| {preset} | {_fmt(origin)} | {_fmt(run_visage(frame))} | {report.link(e)} |"
        )
    overlay = figures.overlay_1d({p: e.points(store) for p, e in table2.items()})
    return [*lines, "", report.fig("table2", overlay)]


def _fig1b(report: _Report, interpolations: dict[str, Experiment]) -> list[str]:
    store = report.store
    alphas = _alphas(next(iter(interpolations.values())), store)
    lines = [
        "",
        "## Fig. 1(B): interpolating from the aligned demo to each finetuned model",
        "",
        "alpha = 0 is the aligned demo, alpha = 1 the finetuned model; the axis extends "
        "past both ends.",
        "",
        "| target | ASR at alpha = " + " | ".join(f"{a:+.2f}" for a in alphas) + " | run |",
        "|---|" + "---|" * (len(INTERPOLATION_GRID) * INTERPOLATION_GRID[0]["num"] + 1),
    ]
    for name, e in interpolations.items():
        cells = " | ".join(_fmt(v) for v in e.points(store).sort_values("alpha").asr)
        lines.append(f"| {name} | {cells} | {report.link(e)} |")
    overlay = figures.overlay_1d({n: e.points(store) for n, e in interpolations.items()})
    return [*lines, "", report.fig("fig1b", overlay), ""]


def _alphas(e: Experiment, store: Store) -> list[float]:
    return sorted(e.points(store).alpha.tolist())
