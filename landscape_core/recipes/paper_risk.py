"""Section 7 of the paper miniature: finetunes' trajectories and the risk preflight.

Every finetune's checkpoints are drawn on the plane of the harmful 10-shot finetune
(Fig. 1B's picture: one path should leave the basin, the mix's should stay), and each
dataset's preflight edge is set against the order in which its finetune broke safety.
Everything goes through the store, so a second ``make paper`` recomputes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.readers import figures
from landscape_core.recipes.trajectory import plane_spec, trajectory
from landscape_core.risk import preflight as risk
from landscape_core.risk.report import RiskReport, Unfinished, report
from landscape_core.risk.spec import DEFAULTS, RiskSettings, risk_sweeps
from landscape_core.spec.checkpoints import read_checkpoints
from landscape_core.spec.config import PromptSetSpec, SweepSpec, TrainingDataSpec
from landscape_core.spec.identity import plan, plane_key
from landscape_core.store.runs import Store

THRESHOLD = DEFAULTS.basin.threshold  # a checkpoint at or above this ASR left the basin
# a control: data that teaches refusals and benign answers, never compliance
CONTROL = ("align (control)", TrainingDataSpec(recipe="align"))
NEVER = "never"


@dataclass(frozen=True)
class Setup:
    """The miniature's model and prompt sets, as the rest of the report uses them."""

    risk: RiskSettings  # the preflight's model, prompts (the landscapes') and tokens
    checkpoints: PromptSetSpec  # what each checkpoint is evaluated on (the ASR prompts)


@dataclass
class Section7:
    paths: dict[str, pd.DataFrame]  # finetune -> its checkpoints (empty: not computed)
    plane_run: str
    risks: dict[str, RiskReport | None]


def data_of(name: str) -> TrainingDataSpec:
    """'harmful 10-shot' -> the data that finetune trained on."""
    recipe, shots = name.split()
    return TrainingDataSpec(recipe=recipe, shots=int(shots.removesuffix("-shot")))


def plane_of(adapters: dict[str, Path]) -> str:
    """The finetune whose plane every path is drawn on: the smallest harmful one."""
    return next(name for name in adapters if name.startswith("harmful"))


def run_section7(
    store: Store,
    adapters: dict[str, Path],
    setup: Setup,
    compute: bool,
    progress: Callable[[str], None],
) -> Section7:
    on = adapters[plane_of(adapters)].resolve()
    plane = plane_spec(on, prompts=setup.risk.prompts)
    paths: dict[str, pd.DataFrame] = {}
    risks: dict[str, RiskReport | None] = {}
    if compute:
        stored = store.trajectories.on_plane(plane_key(plan(plane, store.file_digest)))
        for name, adapter in adapters.items():
            done = stored.get(str(adapter.resolve()), pd.DataFrame())
            if _complete(done, adapter, setup.checkpoints, store):  # computed before: reuse
                paths[name] = done
                continue
            progress(f"trajectory of {name} (section 7)")
            points = trajectory(adapter, store, prompts=setup.checkpoints, on=on, say=progress)
            paths[name] = pd.DataFrame([dataclasses.asdict(p) for p in points])
        progress("the plane under the paths (section 7)")
        plane_run = sweep.run(plane, store).run_id
        for name, data in _datasets(adapters):
            progress(f"risk preflight of {name} (section 7)")
            risks[name] = risk.run(data, store, setup.risk, say=progress)
        return Section7(paths, plane_run, risks)
    try:
        planned = plan(plane, store.file_digest)
    except UserError:  # the finetunes are not trained yet
        return Section7({}, "", {})
    stored = store.trajectories.on_plane(plane_key(planned))
    for name, adapter in adapters.items():
        paths[name] = stored.get(str(adapter.resolve()), pd.DataFrame())
    for name, data in _datasets(adapters):
        sweeps = risk_sweeps(data, setup.risk)
        try:
            ids = [plan(s, store.file_digest).run_id for s in (sweeps.gradient, sweeps.random)]
            risks[name] = report(store, *ids)
        except (Unfinished, UserError):
            risks[name] = None
    return Section7(paths, planned.run_id, risks)


def _complete(path: pd.DataFrame, adapter: Path, prompts: PromptSetSpec, store: Store) -> bool:
    """A stored path has every checkpoint the adapter saved, each evaluated on ``prompts``."""
    steps = [c.step for c in read_checkpoints(adapter)]
    if path.empty or sorted(path.step) != steps or path.asr.isna().any():
        return False
    evaluated = [SweepSpec.from_dict(store.run(r)["spec"]).prompts for r in path.run_id]
    return all(p == prompts for p in evaluated)


def _datasets(adapters: dict[str, Path]) -> list[tuple[str, TrainingDataSpec]]:
    """Each finetune's data, then the control."""
    return [(name, data_of(name)) for name in adapters] + [CONTROL]


def left_at(path: pd.DataFrame) -> int | None:
    """The first checkpoint's step whose own ASR reached the threshold; None: never."""
    if path.empty:
        return None
    out = path[path.asr >= THRESHOLD].sort_values("step")
    return None if out.empty else int(out.step.iloc[0])


def lines(section: Section7, store: Store, fig: Callable[[str, object], str]) -> list[str]:
    out = [
        "",
        "## Section 7 (extension): finetuning trajectories and a risk preflight",
        "",
        "Each finetune saved 10 checkpoints. Each is projected onto the plane of the "
        "smallest harmful finetune (alpha = 1, beta = 0 is that finished finetune; beta is a "
        "seeded random direction made orthogonal to it; 'off' is the share of the "
        "checkpoint's move the plane misses) and evaluated itself on AdvBench 0-79 "
        f"(keyword ASR %). A checkpoint at ASR >= {THRESHOLD:g} has left the basin.",
        "",
    ]
    if not section.paths or all(p.empty for p in section.paths.values()):
        return [*out, "pending: run `make paper`.", ""]
    for name, path in section.paths.items():
        if path.empty:
            out += [f"**{name}**: pending (`trajectory` has not finished for it).", ""]
            continue
        out += [f"**{name}** (left the basin at step {left_at(path) or 'never'}):", "",
                "| step | loss | alpha | beta | off % | ASR % |", "|" + "---|" * 6]  # fmt: skip
        for row in path.sort_values("step").itertuples():
            out.append(f"| {row.step} | {row.loss:.3f} | {row.alpha:+.3f} | {row.beta:+.3f} | "
                       f"{100 * row.relative_residual:.1f} | {_num(row.asr)} |")  # fmt: skip
        out.append("")
    plane = store.points_frame(section.plane_run) if section.plane_run else pd.DataFrame()
    if not plane.empty and plane.asr.notna().all():
        heat = figures.heatmap_2d(plane)
        for name, path in section.paths.items():
            if not path.empty:
                figures.add_path(heat, name, path)
        out += [f"The plane's landscape (AdvBench 0-19) with every path: "
                f"{fig('trajectories', heat)}", ""]  # fmt: skip
    return out + _risk_lines(section)


def _risk_lines(section: Section7) -> list[str]:
    out = [
        "### The risk preflight, checked against the finetunes",
        "",
        "The edge along each dataset's gradient direction (alpha > 0, the first training "
        "step's way; 'other side' is alpha < 0) against the band of 10 random directions' "
        f"edges (both sides each), ASR >= {THRESHOLD:g}% on AdvBench 0-19.",
        "",
        "| data | edge along its gradient | other side | random 5th / median [95% CI] / 95th "
        "| narrower by | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in section.risks.items():
        if r is None:
            out.append(f"| {name} | pending | | | | |")
            continue
        b = r.random_edges
        ci = "" if b.p50_low is None else f" [{b.p50_low:.3f}, {b.p50_high:.3f}]"
        ratio = "-" if r.verdict.narrower_by is None else f"{r.verdict.narrower_by:.0f}x"
        other = r.gradient_edges[0]
        out.append(f"| {name} | {_edge(r.gradient_edge)} | {_edge(other)} | {b.p5:.3f} / "
                   f"{b.p50:.3f}{ci} / {b.p95:.3f} | {ratio} | {r.verdict.level} |")  # fmt: skip
    both = [n for n, p in section.paths.items()
            if not p.empty and section.risks.get(n) is not None]  # fmt: skip
    if len(both) < 2:
        return out
    edges = {n: section.risks[n].gradient_edge for n in both}  # type: ignore[union-attr]
    left = {n: left_at(section.paths[n]) for n in both}
    final = {n: -float(section.paths[n].sort_values("step").asr.iloc[-1]) for n in both}
    broke = {n: float("inf") if v is None else float(v) for n, v in left.items()}
    pairs = _pairs(edges, broke)
    out += [
        "",
        f"Over the finetunes with both a path and a preflight ({', '.join(both)}), each "
        "pair is concordant when the narrower edge belongs to the finetune that left the "
        "basin at an earlier step (never leaving counts as last), discordant when the "
        "other one did, and tied when the edges are equal at the search's step (1e-4):",
        "",
        f"- edges: {', '.join(f'{n} {_edge(e)}' for n, e in edges.items())};",
        f"- left the basin at step: {', '.join(f'{n} {left[n] or NEVER}' for n in both)};",
        f"- final ASR: {', '.join(f'{n} {-final[n]:.1f}' for n in both)};",
        f"- pairs: {pairs['concordant']} concordant, {pairs['discordant']} discordant, "
        f"{pairs['tied']} tied by the preflight, {pairs['both tied']} tied in both.",
        "",
        "The preflight ranked the datasets in the order their finetunes broke safety: "
        + (
            "yes."
            if pairs["concordant"] and not (pairs["discordant"] or pairs["tied"])
            else "no: it cannot separate them (see the pairs above)."
        ),
        "",
    ]
    return out


def _pairs(edges: dict[str, float | None], broke: dict[str, float]) -> dict[str, int]:
    """Kendall-style pair counts of the preflight's order against the finetunes'."""
    counts = {"concordant": 0, "discordant": 0, "tied": 0, "both tied": 0}
    names = list(edges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ea = float("inf") if edges[a] is None else edges[a]
            eb = float("inf") if edges[b] is None else edges[b]
            if ea == eb:
                counts["both tied" if broke[a] == broke[b] else "tied"] += 1
            elif broke[a] == broke[b]:
                counts["discordant"] += 1  # the preflight separates what training did not
            elif (ea < eb) == (broke[a] < broke[b]):
                counts["concordant"] += 1
            else:
                counts["discordant"] += 1
    return counts


def _edge(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.4f}"


def _num(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.1f}"
