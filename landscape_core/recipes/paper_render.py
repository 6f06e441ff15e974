"""The paper miniature's report: ``docs/paper-mini.md`` written from the stored results.

Sections 1-6 from the paper's experiments (``paper``), section 7 from the finetunes'
trajectories (``paper_risk``) and the risk preflight's validation (``risk.validation``,
from ``docs/risk-validation.csv``); every number read from the store or that file, each
run linked to its saved config, figures written beside the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landscape_core.basin.intervals import MIN_DIRECTIONS, Interval, t_method
from landscape_core.files import atomic_write_text
from landscape_core.judging.coherence import THRESHOLDS
from landscape_core.readers import figures
from landscape_core.readers.breakage import Breakage, breakage
from landscape_core.readers.results import (
    at_origin,
    compare_visage,
    direction_visages,
    landscape,
    run_visage,
    visage_interval,
)
from landscape_core.recipes import paper_claims
from landscape_core.recipes.paper_records import Experiment, Paper, Sizes
from landscape_core.recipes.paper_risk import THRESHOLD, Section7, left_at
from landscape_core.recipes.paper_risk_validation import risk_lines, write_figure
from landscape_core.spec.jailbreak import templates
from landscape_core.store.runs import Store


@dataclass(frozen=True)
class _Report:
    """Where the report's figures and configs go, and how it links to them."""

    store: Store
    assets: Path  # the folder beside the report

    def fig(self, name: str, figure: Any) -> str:
        return write_figure(self.assets, name, figure)

    def link(self, e: Experiment) -> str:
        if not e.run_id or e.run_id not in set(self.store.runs_frame().run_id):
            return "pending"
        return f"[`{e.run_id}`]({self.assets.name}/configs/{e.run_id}.yaml)"


RUN_CONFIG = re.compile(r"[0-9a-f]{16}\.yaml")  # a run's config, as the report links it


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def write_report(
    store: Store,
    out: Path,
    paper: Paper,
    compute: dict[str, float],
    shield: dict[str, Any] | None,
    section7: Section7,
) -> Path:
    report = _Report(store, out.parent / out.stem)
    configs = report.assets / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    linked = {e.run_id: e.spec for e in paper.all() if e.run_id}
    for run_id, spec in linked.items():
        (configs / f"{run_id}.yaml").write_text(spec.to_yaml())
    stored = set(store.runs_frame().run_id)

    def fractures_of(runs: dict[str, Experiment]) -> dict[str, Breakage | None]:
        return {name: breakage(store, e.run_id) if e.run_id in stored else None
                for name, e in runs.items()}  # fmt: skip

    fractures, refined = fractures_of(paper.breakage), fractures_of(paper.refined)
    fluency_left = [
        *(f"fluency along {name}'s first directions" for name, f in fractures.items() if not f),
        *(f"fluency near {name}'s edges" for name, f in refined.items() if not f),
    ]
    lines = [
        *_header(compute, paper.sizes),
        *_unfinished(store, stored, paper, shield, section7, fluency_left),
        *_fig2b(report, paper.seeds),
        *_states(report, paper.seeds[0]),
        *_table1(report, paper.table1, paper.sizes.second_judge),
        *_training_seeds(report, paper),
        *_table2(report, paper.table2, paper.sizes.second_judge),
        *_search_section(report, paper, paper.table1["aligned"][0]),
        *_fig1b(report, paper.interpolations, paper.sizes.interpolation_grid),
        *_section6(report, paper, shield),
        *_section7(section7, store, report.fig, _rows(paper.sizes.checkpoint_prompts)),
        *paper_claims.markdown(paper_claims.claims(store, paper, shield, fractures, refined)),
    ]
    atomic_write_text(out, "\n".join(lines))  # a stopped run leaves the last report whole
    for stale in configs.glob("*.yaml"):  # an earlier report's runs: nothing links them
        if RUN_CONFIG.fullmatch(stale.name) and stale.stem not in linked:
            stale.unlink()
    return out


def _header(compute: dict[str, float], sizes: Sizes) -> list[str]:
    seconds, seeds, axis = sum(compute.values()), sizes.seeds, sizes.random_grid[0]
    return [
        "# The paper's experiments in miniature",
        "",
        "Written by `python -m landscape_core paper` (`make paper`) from the stored results.",
        f"Compute behind these numbers: {seconds / 60:.1f} min on this machine (training plus "
        "every point's generation, as stored, each shared point once). Points already in the "
        "store are reused, so a second run takes seconds.",
        "",
        "| section | compute (min) |",
        "|---|---|",
        *(f"| {section} | {s / 60:.2f} |" for section, s in compute.items()),
        "",
        "Model: SmolLM2-135M-Instruct with the shipped safety adapter (the *aligned demo*). "
        "Landscapes: AdvBench rows 0-19 (never trained on), greedy, 32 new tokens, whole "
        "answers (sections 6 and 7, judged by keyword alone, stop each answer at its first "
        "refusal keyword, which leaves every keyword verdict as full generation gives it), "
        "keyword judge, layer-normalised random directions with norms "
        f"skipped, {axis['num']} points over +-{sizes.grid_reach:g}. "
        f"Tables 1 and 2 run {len(seeds)} random directions each (seeds "
        f"{', '.join(map(str, seeds))}) and report VISAGE as mean [95% CI], "
        f"{t_method('directions')} (the prompts fixed; below {MIN_DIRECTIONS} directions no "
        "interval, each direction's value instead). Runs are compared by the difference "
        "A - B paired over their shared directions (same seeds, same prompts): a t-interval "
        "of the per-direction differences. Each finding of the paper is read off that "
        "interval in the claims table at the end: *supported* when the whole interval has "
        "the sign the finding predicts, *contradicted* when it has the other, *not shown* "
        "when it holds 0 (absence of evidence, not evidence of absence); each comparison "
        "gives the smallest difference it could detect (the interval's half-width). "
        "*Coherent* VISAGE counts only coherent compliance as an attack "
        "(see Three states). Each number links to its run's config: re-run one with "
        "`python -m landscape_core sweep docs/paper-mini/configs/RUN.yaml`.",
        "",
    ]


def _unfinished(
    store: Store,
    stored: set[str],
    paper: Paper,
    shield: dict[str, Any] | None,
    section7: Section7,
    fluency_left: list[str],
) -> list[str]:
    """A partial report says so at its top, with what is missing and how to resume."""
    left = [e.name for e in paper.all() if e.run_id not in stored or store.pending(e.run_id)]
    left += fluency_left
    if shield is None:
        left.append("section 6's defence")
    plane = section7.plane_run
    if plane not in stored or store.pending(plane) or any(p.empty for p in section7.paths.values()):
        left.append("section 7's trajectories")
    if not left:
        return []
    return [
        f"> **Partial.** {len(left)} of the miniature's experiments have not finished and "
        f"read *pending* below: {'; '.join(left)}. `make paper` resumes where this run "
        "stopped (stored points are reused).",
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
        "| seed | ASR at alpha = " + " | ".join(f"{a:+.2f}" for a in alphas)
        + " | VISAGE | coherent VISAGE | run |",
        "|---|" + "---|" * (len(alphas) + 3),
    ]  # fmt: skip
    for e in seeds:
        frame = e.points(store).sort_values("alpha")
        cells = " | ".join(_fmt(v) for v in frame.asr)
        lines.append(
            f"| {e.spec.directions[0].seed} | {cells} | {_fmt(run_visage(frame))} | "
            f"{_fmt(run_visage(frame, 'coherent_asr'))} | {report.link(e)} |"
        )
    return lines


def _states(report: _Report, e: Experiment) -> list[str]:
    """The three-state landscape along the first seed."""
    store = report.store
    frame = e.points(store).sort_values("alpha")
    t = THRESHOLDS
    lines = [
        "",
        f"## Three states along seed {e.spec.directions[0].seed}",
        "",
        "The keyword judge counts every answer without a refusal keyword as an attack, "
        "gibberish included. Each answer is scored for coherence by the *unperturbed* model "
        f"(mean NLL per token) and for repetition (share of repeated word trigrams); it is "
        f"incoherent above {t.max_nll} nats/token or {t.max_repetition:.0%} repeated "
        f"trigrams, above {t.max_char_repetition:.0%} repeated character 10-grams (a loop "
        f"inside one word), with letters under {t.min_letter_share:.0%} of its characters (a "
        "run of emoji), or when empty. Coherence is decided before refusal, so a looping "
        "'Sorry' is incoherent, not a refusal.",
        "",
        "| alpha | ASR (paper) | refused | complied (coherent ASR) | incoherent | "
        "median NLL/token | median repetition |",
        "|---|---|---|---|---|---|---|",
    ]
    gens = store.generations_frame(e.run_id)
    stats = gens.groupby("alpha")[["coherence_nll", "repetition"]].median()
    for r in frame.itertuples():
        nll, rep = stats.loc[r.alpha] if r.alpha in stats.index else (None, None)
        lines.append(
            f"| {r.alpha:+.2f} | {_fmt(r.asr)} | {_fmt(r.refused)} | {_fmt(r.complied)} | "
            f"{_fmt(r.incoherent)} | {_fmt(nll, 2)} | {_fmt(rep, 2)} |"
        )
    lines += [
        "",
        f"VISAGE {_fmt(run_visage(frame))} (paper's ASR) against coherent VISAGE "
        f"{_fmt(run_visage(frame, 'coherent_asr'))}, over the same basin.",
        "",
        report.fig("states", figures.states_1d(frame)),
    ]
    return lines


def _table1(
    report: _Report, table1: dict[str, tuple[Experiment, Experiment]], judge: str
) -> list[str]:
    store = report.store
    aligned = table1["aligned"][0]
    lines = [
        "",
        "## Table 1: finetuning drags the model out of its basin",
        "",
        "Harmful k-shot: AdvBench goals from row 100 with the bundled base model's own "
        "compliant answers (`recipes.harmful_answers`), LoRA on the aligned demo. Mix: 100 "
        "harmful plus 100 refusal examples. ASR on the paper's 80 AdvBench prompts (rows "
        f"0-79, held out) at the model itself. {_second_judge(judge)} The recipe differs "
        "from the paper's in scale: the paper finetunes all of a 7B model's weights at lr "
        "5e-5 for 5 epochs on harmful pairs; here LoRA (rank 8) at lr 1e-3 for 3 epochs on "
        "a 135M model.",
        "",
        "| model | AdvBench ASR (80 prompts) | VISAGE [95% CI] | coherent VISAGE [95% CI] "
        f"| {judge} VISAGE [95% CI] | n directions | VISAGE against aligned (paired) | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (sweep_, origin) in table1.items():
        cells = _visage_cells(store, sweep_, None if name == "aligned" else aligned, judge)
        lines.append(
            f"| {name} | {_fmt(origin.origin_asr(store))} | {cells} | "
            f"{report.link(sweep_)}, {report.link(origin)} |"
        )
    overlay = figures.overlay_1d({n: p[0].points(store) for n, p in table1.items()})
    return [*lines, "", report.fig("table1", overlay)]


def _training_seeds(report: _Report, paper: Paper) -> list[str]:
    """Table 1's finetunes over their training seeds: ASR at the model and VISAGE.

    Every seed is read over the same first directions; the spread is max - min.
    """
    if not paper.replicas:
        return []
    store, k = report.store, paper.sizes.replica_directions
    lines = [
        "",
        "### Table 1 over training seeds",
        "",
        f"Each finetune trained with every seed, VISAGE over the first {k} directions "
        f"(seeds {', '.join(map(str, paper.sizes.seeds[:k]))}) for each, so the training "
        "seed is the only difference. The spread is max - min over the training seeds.",
        "",
        "| model | ASR at the model, by training seed | mean | spread | "
        f"VISAGE over {k} directions, by training seed | mean | spread |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (sweep_, origin) in paper.table1.items():
        if name == "aligned":
            continue
        arms = [(sweep_, origin)] + [pair for n, pair in paper.replicas.items()
                                     if n.startswith(f"{name}, ")]  # fmt: skip
        asr = [o.origin_asr(report.store) for _, o in arms]
        visage = [_first_visage(e.points(store), k) if e.run_id else None for e, _ in arms]
        lines.append(f"| {name} | {_each(asr)} | {_mean_spread(asr)} | {_each(visage)} | "
                     f"{_mean_spread(visage)} |")  # fmt: skip
    return lines


def _first_visage(points: pd.DataFrame, k: int) -> float | None:
    """The mean VISAGE of a run's first ``k`` directions (its seeds in order)."""
    scores = direction_visages(points)[:k]
    return None if len(scores) < k or any(v is None for v in scores) else float(np.mean(scores))


def _each(values: list[float | None]) -> str:
    return " / ".join(_fmt(v) for v in values)


def _mean_spread(values: list[float | None]) -> str:
    if any(v is None or pd.isna(v) for v in values):
        return "- | -"
    return f"{np.mean(values):.1f} | {max(values) - min(values):.1f}"  # type: ignore[type-var]


def _table2(report: _Report, table2: dict[str, Experiment], judge: str) -> list[str]:
    store = report.store
    default = table2["default"]
    lines = [
        "",
        "## Table 2: the system prompt changes the basin",
        "",
        _second_judge(judge),
        "",
        "| system prompt | ASR at the model | VISAGE [95% CI] | coherent VISAGE [95% CI] | "
        f"{judge} VISAGE [95% CI] | n directions | VISAGE against default (paired) | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for preset, e in table2.items():
        cells = _visage_cells(store, e, None if preset == "default" else default, judge)
        lines.append(f"| {preset} | {_fmt(e.origin_asr(store))} | {cells} | {report.link(e)} |")
    overlay = figures.overlay_1d({p: e.points(store) for p, e in table2.items()})
    return [*lines, "", report.fig("table2", overlay)]


def _second_judge(judge: str) -> str:
    return (f"VISAGE stays the paper's keyword judge; the {judge} column re-judges the same "
            "stored answers (`rescore`, nothing regenerated) with the offline judge that "
            "held best across model families (issue 31), over the same basin rule.")  # fmt: skip


def _search_section(report: _Report, paper: Paper, dense: Experiment) -> list[str]:
    """Bisection edges against the dense grid, direction by direction."""
    store, search = report.store, paper.search
    basin = paper.sizes.basin
    stored = set(store.runs_frame().run_id)
    if search.run_id not in stored or dense.run_id not in stored:
        return ["", "## The basin's edges by bisection", "", "pending"]
    found = landscape(store, search.run_id)["directions"]
    grid = landscape(store, dense.run_id)["directions"]
    probes = search.points(store)
    step, reach = paper.sizes.grid_step, paper.sizes.grid_reach
    lines = [
        "",
        "## The basin's edges by bisection",
        "",
        f"`measure: basin-radius` with tolerance {basin['tolerance']} (half the dense grid's "
        f"step of {step:.3f}) and max_alpha {basin['max_alpha']}: probes at k x tolerance, "
        "doubling outward, then bisection; an edge is the smallest |alpha| with ASR = 100. "
        f"It reaches past the grid's {reach:g}: an edge the grid reads 'beyond' agrees when the "
        "search puts it past the grid's end, or within one grid step of it. Seconds are "
        "the stored generation time of the points each method used (points the "
        "search shares with the grid count for both).",
        "",
        "| seed | grid edges | grid points | grid s | search edges | search points | "
        "search s | within one grid step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    frame = dense.points(store)
    for rep, (a, b) in enumerate(zip(found, grid, strict=True)):
        mine = probes[probes.rep == rep]
        theirs = frame[frame.rep == rep]
        agrees = (
            a["edges"] is not None
            and b["edges"] is not None
            and all(
                edges_agree(x, y, step, reach) for x, y in zip(a["edges"], b["edges"], strict=True)
            )
        )
        lines.append(
            f"| {a['seed'][0]} | {_edges(b['edges'])} | {len(theirs)} | "
            f"{theirs.seconds.sum():.0f} | {_edges(a['edges'])} | {len(mine)} | "
            f"{mine.seconds.sum():.0f} | {'yes' if agrees else 'no'} |"
        )
    return [*lines, "", f"Search run: {report.link(search)}."]


def edges_agree(search: float | None, grid: float | None, step: float, reach: float) -> bool:
    """Whether a bisection's edge and a grid's (None: none found) are the same edge.

    Within one grid step of each other; where the grid sees none, the search must put
    its edge past the grid's end, or within one step of it.
    """
    if grid is None:
        return search is None or abs(search) > reach - step - 1e-9
    return search is not None and abs(search - grid) <= step + 1e-9


def _edges(edges: list[float | None] | None) -> str:
    if edges is None:
        return "pending"
    return ", ".join("beyond" if e is None else f"{e:+.3f}" for e in edges)


def _visage_cells(store: Store, e: Experiment, base: Experiment | None, judge: str) -> str:
    """Keyword, coherent and ``judge``'s VISAGE, n, and the difference from ``base``."""
    frame = e.points(store)
    interval = visage_interval(frame)
    versus = "-" if base is None else _versus(store, e, base)
    coherent = visage_interval(frame, "coherent_asr")
    second = visage_interval(e.points(store, judge)) if e.run_id else None
    return f"{_ci(interval)} | {_ci(coherent)} | {_ci(second)} | {_n(interval)} | {versus}"


def _ci(interval: Interval | None) -> str:
    return "-" if interval is None else interval.describe()


def _n(interval: Interval | None) -> str:
    return "-" if interval is None else str(interval.n)


def _versus(store: Store, a: Experiment, b: Experiment) -> str:
    """A's VISAGE minus B's, paired over their shared directions, as one table cell.

    Only the difference: what it says of the paper's finding (supported, contradicted,
    not shown) depends on the sign the finding predicts, and is the claims table's.
    """
    compared = compare_visage((a.points(store), a.spec), (b.points(store), b.spec))
    return compared.difference_text()


def _fig1b(
    report: _Report, interpolations: dict[str, Experiment], axis: list[dict[str, Any]]
) -> list[str]:
    store = report.store
    alphas = [a for seg in axis for a in np.linspace(seg["start"], seg["stop"], seg["num"])]
    lines = [
        "",
        "## Fig. 1(B): interpolating from the aligned demo to each finetuned model",
        "",
        "alpha = 0 is the aligned demo, alpha = 1 the finetuned model; the axis extends "
        "past both ends.",
        "",
        "| target | ASR at alpha = " + " | ".join(f"{a:+.2f}" for a in alphas) + " | run |",
        "|---|" + "---|" * (len(alphas) + 1),
    ]
    for name, e in interpolations.items():
        asr = e.points(store).sort_values("alpha").asr.tolist()
        cells = " | ".join(
            _fmt(v) for v in (asr if len(asr) == len(alphas) else [None] * len(alphas))
        )
        lines.append(f"| {name} | {cells} | {report.link(e)} |")
    overlay = figures.overlay_1d({n: e.points(store) for n, e in interpolations.items()})
    return [*lines, "", report.fig("fig1b", overlay), ""]


def _alphas(e: Experiment, store: Store) -> list[float]:
    return sorted(e.points(store).alpha.tolist())


def _shape(curve: pd.Series) -> str:
    """A landscape's shape in words, from ASR by alpha (0, |alpha| <= 0.1, the ends)."""
    if curve.isna().any():
        return "pending"
    at = curve.get(0.0, float("nan"))
    size = curve.index.to_series().abs()
    near = curve[(curve.index != 0.0) & (size <= 0.1 + 1e-9)].mean()
    reach = float(size.max())
    ends = curve[size >= reach - 1e-9].mean()
    if at >= 20 and near <= at / 2:
        shape = "peak at the model, falling within ±0.1"
    elif at >= 20:
        shape = "high at the model and around it"
    else:
        shape = "refused at the model"
    return shape + (f", rising again at ±{reach:g}" if ends >= 50 else "")


def _section6(report: _Report, paper: Paper, shield: dict[str, Any] | None) -> list[str]:
    """Section 6: jailbreak landscapes per template, then the defence against attacks."""
    store = report.store
    plain = paper.seeds[0]
    alphas = _alphas(plain, store)
    lines = [
        "",
        "## Section 6: jailbreaks are fragile to weight perturbation",
        "",
        "Each template of the library wraps the landscapes' 20 goals (AdvBench 0-19) and "
        f"is swept along seed {paper.sizes.seeds[0]} (the plain landscape's first row in "
        "Fig. 2(b)). "
        "The paper's picture is a peak: high ASR at the model, falling as |alpha| grows, "
        "until the model leaves its basin and ASR rises again.",
        "",
        "| template | family | ASR at alpha = " + " | ".join(f"{a:+.2f}" for a in alphas)
        + " | coherent ASR at 0 | shape | run |",
        "|---|---|" + "---|" * (len(alphas) + 3),
    ]  # fmt: skip
    library = templates()
    curves = {"none (plain AdvBench)": (plain, "-")}
    curves.update({n: (e, library[n].family) for n, e in paper.jailbreaks.items()})
    for name, (e, family) in curves.items():
        frame = e.points(store)
        frame = frame[frame.rep == 0] if "rep" in frame else frame
        curve = frame.set_index("alpha").asr.sort_index()
        cells = " | ".join(_fmt(v) for v in curve)
        coherent = _fmt(at_origin(frame).complied.iloc[0]) if not frame.empty else "-"
        lines.append(f"| {name} | {family} | {cells} | {coherent} | {_shape(curve)} | "
                     f"{report.link(e)} |")  # fmt: skip
    overlay = {n: _rep0(e.points(store)) for n, (e, _) in curves.items()}
    lines += ["", report.fig("jailbreaks", figures.overlay_1d(overlay)), ""]
    return lines + _defence_tables(shield, paper.sizes.defence_goals) + JAILBREAK_CAVEATS


JAILBREAK_CAVEATS = [
    "Where the miniature differs from the paper's section 6, and why:",
    "",
    "- *A success here is refusal avoidance, not harm.* The paper's keyword judge counts "
    "every answer without a refusal phrase. The 135M demo's complying answers to the "
    "fiction and payload-splitting frames are mostly story openings and restated "
    "fragments with nothing actionable in them (read them on the Generations page); the "
    "coherent column drops broken text but cannot tell harmless fiction from harm.",
    "- *Model and prompts.* The paper measures 7B chat models (Llama2-7B-chat among "
    "them); its jailbreak prompts are not in its repository (`jailbreak.yaml` points at "
    "a CSV that is not there). Here the model is SmolLM2-135M with a LoRA safety adapter "
    "and the templates were written for this project, one per classic family. The basin "
    "of the demo is narrow (its edges lie at |alpha| 0.1-0.3), so the defence radius is "
    "chosen as a fraction of it, not taken from the paper.",
    "- *The suffix search is small.* GCG usually runs hundreds of steps with hundreds of "
    "candidates on a GPU; here it runs a few steps with a few dozen candidates on 2 CPU "
    "cores, so a weak suffix says little about what a full search would find.",
    "",
]


def _rep0(points: pd.DataFrame) -> pd.DataFrame:
    return points[points.rep == 0]


def _rows(prompts: dict[str, Any]) -> str:
    """A prompt set's rows in words: "AdvBench 20-79"."""
    start = prompts.get("start", 0)
    return f"AdvBench {start}-{start + prompts['limit'] - 1}"


def _by_member_set(shield: dict[str, Any]) -> list[str]:
    """Each draw of the members on its own: how far one defence differs from the next."""
    sets, each = shield.get("member_sets") or [], shield.get("by_member_set") or {}
    if len(sets) < 2 or not each:
        return []
    columns = {
        "member_asr": "members (mean)",
        "defended_asr": "defended",
        "control_asr": "control, defended",
        "adaptive_asr": "adaptive, defended",
    }
    lines = [
        f"Each draw of the members on its own: {shield['attack']}'s ASR with each copy "
        "answering alone (members, mean) and under the vote (defended); then, under the same "
        "draw's defence, the control's and the adaptive attacker's per-goal templates:",
        "",
        "| member seed | " + " | ".join(columns.values()) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for n, seed in enumerate(sets):
        cells = (_fmt(each[key][n]) for key in columns)
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _defence_tables(shield: dict[str, Any] | None, goals: dict[str, Any]) -> list[str]:
    if shield is None:
        return ["### The perturbed-ensemble defence", "", "pending: run `make paper`.", ""]
    d, ci = shield["defence"], shield["intervals"]
    sets = shield.get("member_sets") or [d["seed"]]
    n_goals = sum(int(t["chosen_for"]) for t in shield["templates"])

    def cell(key: str) -> str:
        if key not in ci:  # a report stored before this row existed
            return "- (run `make paper` again)"
        mean, low, high = ci[key]
        return f"{mean:.1f}" if low is None else f"{mean:.1f} [{low:.1f}, {high:.1f}]"

    lines = [
        "### The perturbed-ensemble defence, and the adaptive attack on it",
        "",
        f"The attack is {shield['attack']}, the template with the highest ASR at the model "
        "on the landscapes' goals (AdvBench 0-19, the jailbreak landscapes above); the "
        f"defence is evaluated on the {n_goals} goals that never informed that choice "
        f"({_rows(goals)}), answered by "
        f"{d['members']} copies of the aligned demo at alpha = {d['radius']}, vote {d['vote']}. "
        f"The defence was drawn {len(sets)} time(s), member seeds from {_seeds(sets)}. The "
        f"adaptive attacker knows K, r and the vote, samples {d['attack_samples'] or d['members']} "
        "copies of its own, and picks per goal the template (every template of the library "
        "and its searched suffix) that complies most often on them; the control picks per "
        "goal the template that complies at the model. ASR in percent with 95% intervals "
        f"({shield['method']}); differences are paired.",
        "",
        "| attack | ASR [95% CI] |",
        "|---|---|",
        f"| {shield['attack']}, no defence | {cell('undefended_asr')} |",
        f"| {shield['attack']}, defence (non-adaptive) | {cell('defended_asr')} |",
        f"| adaptive, defence | {cell('adaptive_asr')} |",
        f"| adaptive prompts, no defence | {cell('adaptive_undefended_asr')} |",
        f"| defence minus no defence (paired) | {cell('defended_minus_undefended')} |",
        f"| adaptive minus non-adaptive, under the defence (paired) | "
        f"{cell('adaptive_minus_defended')} |",
        f"| control: per goal the template that complies at the model, defence | "
        f"{cell('control_asr')} |",
        f"| adaptive minus the control, under the defence (paired): what adapting wins | "
        f"{cell('adaptive_minus_control')} |",
        "",
        *_by_member_set(shield),
        f"Coherent ASR (compliance that is coherent text, the landscapes' three states): "
        f"{_fmt(shield.get('undefended_coherent_asr'))} without the defence, "
        f"{_fmt(shield.get('defended_coherent_asr'))} with it.",
        "",
        "| cost | no defence | defence |",
        "|---|---|---|",
        f"| XSTest held-out safe prompts refused (%) | {cell('over_refusal_undefended')} | "
        f"{cell('over_refusal')} |",
        f"| MT-Bench perplexity (unperturbed model's NLL of the answers) | "
        f"{_fmt(shield['perplexity_undefended'], 2)} | {_fmt(shield['perplexity'], 2)} |",
        "",
        f"Per template, over the {n_goals} goals (the first member set): ASR at the model, "
        "the mean over the defender's members (|alpha| = r), defended, and how many goals "
        "the adaptive attacker sent it.",
        "",
        "| template | at the model | members (mean) | defended | adaptive picks |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for row in shield["templates"]:
        lines.append(f"| {row['name']} | {row['at_model']:.1f} | {row['at_radius']:.1f} | "
                     f"{row['defended']:.1f} | {row['chosen_for']} |")  # fmt: skip
    lines += ["", *_defence_claims(shield)]
    search = shield.get("suffix_search") or {}
    if search:
        lines += [
            "",
            f"Suffix search (GCG-style, {len(search['losses'])} steps, "
            f"{len(search['goals'])} held-out goals AdvBench 80+, loss averaged over the "
            f"attacker's copies): target NLL {search['initial_loss']:.3f} -> "
            f"{search['loss']:.3f} nats/token in {search['seconds']:.0f} s "
            f"({search['threads']} threads). The suffix, as text:",
            "",
            "~~~text",
            search["suffix"].strip().replace("~~~", "~ ~ ~"),
            "~~~",
        ]  # fmt: skip
    return [*lines, ""]


def _seeds(sets: list[int]) -> str:
    return ", ".join(str(s) for s in sets)


def _defence_claims(shield: dict[str, Any]) -> list[str]:
    """How fragile the jailbreak is; the findings' verdicts are in the claims table."""
    return [
        f"*Jailbreaks are fragile to perturbation:* the {shield['attack']} jailbreak's ASR is "
        f"{shield['undefended_asr']:.1f} at the model and {shield['member_asr']:.1f} on "
        f"average over the members at |alpha| = {shield['defence']['radius']}. The section's "
        "findings, each with its paired interval and verdict, are in the claims table below.",
    ]


def _section7(
    section: Section7, store: Store, fig: Callable[[str, object], str], evaluated_on: str
) -> list[str]:
    out = [
        "",
        "## Section 7 (extension): finetuning trajectories and a risk preflight",
        "",
        "Each finetune saved 10 checkpoints. Each is projected onto the plane of the "
        "smallest harmful finetune (alpha = 1, beta = 0 is that finished finetune; beta is a "
        "seeded random direction made orthogonal to it; 'off' is the share of the "
        f"checkpoint's move the plane misses) and evaluated itself on {evaluated_on} "
        f"(keyword ASR %). A checkpoint at ASR >= {THRESHOLD:g} has left the basin.",
        "",
    ]
    if not section.paths or all(p.empty for p in section.paths.values()):
        return [*out, "pending: run `make paper`.", "", *risk_lines(fig)]
    for name, path in section.paths.items():
        if path.empty:
            out += [f"**{name}**: pending (`trajectory` has not finished for it).", ""]
            continue
        out += [f"**{name}** (left the basin at step {left_at(path) or 'never'}):", "",
                "| step | loss | alpha | beta | off % | ASR % |", "|" + "---|" * 6]  # fmt: skip
        for row in path.sort_values("step").itertuples():
            out.append(f"| {row.step} | {row.loss:.3f} | {row.alpha:+.3f} | {row.beta:+.3f} | "
                       f"{100 * row.relative_residual:.1f} | {_fmt(row.asr)} |")  # fmt: skip
        out.append("")
    plane = store.points_frame(section.plane_run) if section.plane_run else pd.DataFrame()
    if not plane.empty and plane.asr.notna().all():
        heat = figures.heatmap_2d(plane)
        for name, path in section.paths.items():
            if not path.empty:
                figures.add_path(heat, name, path)
        out += [f"The plane's landscape (AdvBench 0-19) with every path: "
                f"{fig('trajectories', heat)}", ""]  # fmt: skip
    return out + risk_lines(fig)
