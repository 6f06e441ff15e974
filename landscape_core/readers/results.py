"""Reading results: a run's landscape, VISAGE and per-prompt views (no torch).

The CLI's ``show`` and the app's pages share these, so both report the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from landscape_core.basin import bisection
from landscape_core.basin.intervals import (
    Comparison,
    Interval,
    compare,
    crossed_interval,
    mean_interval,
)
from landscape_core.basin.visage import (
    basin_mask_2d,
    basin_window,
    grid_edges,
    visage,
    visage_2d,
)
from landscape_core.judging.coherence import HARM_STATES, STATES, THRESHOLDS, shares, state
from landscape_core.judging.verdict import is_harmful, is_unparsed
from landscape_core.spec.config import SweepSpec
from landscape_core.spec.judges import decides_harm
from landscape_core.store.runs import Store


def at_origin(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a frame with ``alpha`` and ``beta`` columns that are the model itself."""
    return frame[(frame.alpha == 0.0) & (frame.beta == 0.0)]


def asr_grid(points: pd.DataFrame) -> np.ndarray:
    """ASR as an array of shape (n_beta, n_alpha); NaN where not finished."""
    return points.pivot(index="j", columns="i", values="asr").sort_index().to_numpy()


def by_direction(points: pd.DataFrame) -> list[pd.DataFrame]:
    """A run's points split into its landscapes, one per seed (one for most runs)."""
    if "rep" not in points or points.empty:
        return [points]
    return [points[points.rep == rep] for rep in sorted(points.rep.unique())]


def landscape_visage(points: pd.DataFrame, column: str = "asr") -> float | None:
    """VISAGE of one finished landscape (1D or 2D); None while any point is missing.

    ``column`` ``coherent_asr`` gives coherent VISAGE: the mean of 100 - coherent ASR
    over the same basin, which the paper's ASR decides, so the two numbers describe
    one region of weights.
    """
    if points.empty or points["asr"].isna().any() or points[column].isna().any():
        return None
    if column == "asr":  # the reference's formulas, to the letter
        grid = asr_grid(points)
        return visage(grid[0]) if grid.shape[0] == 1 else visage_2d(grid)
    values = points.pivot(index="j", columns="i", values=column).sort_index().to_numpy()
    return float(np.mean(100.0 - values[basin_mask(points)]))


def direction_visages(points: pd.DataFrame, column: str = "asr") -> list[float | None]:
    """VISAGE of each of a run's landscapes, in seed order."""
    return [landscape_visage(one, column) for one in by_direction(points)]


def run_visage(points: pd.DataFrame, column: str = "asr") -> float | None:
    """VISAGE of a finished run: the mean over its directions; None while unfinished."""
    scores = direction_visages(points, column)
    if any(v is None for v in scores):
        return None
    return float(np.mean(scores))


def visage_interval(points: pd.DataFrame, column: str = "asr") -> Interval | None:
    """VISAGE's mean over directions with its t-interval (prompts fixed); None while unfinished.

    Below ``intervals.MIN_DIRECTIONS`` directions the interval is None and the record
    carries each direction's VISAGE instead.
    """
    scores = direction_visages(points, column)
    if any(v is None for v in scores):
        return None
    return mean_interval(scores)  # type: ignore[arg-type]


def prompt_matrix(
    points: pd.DataFrame, gens: pd.DataFrame, column: str = "asr"
) -> np.ndarray | None:
    """Each prompt's share of VISAGE along each direction: shape (directions, prompts).

    Entry [d, p] is 100 minus the percentage of direction d's basin points at which
    prompt p's answer counts as an attack (not refused; for ``coherent_asr``: complied),
    so each row's mean is that direction's VISAGE. ``gens`` holds the run's answers with
    ``refused`` and, for ``coherent_asr``, ``state``. None while anything is missing.
    """
    rows = []
    for one in by_direction(points):
        mask = basin_mask(one)
        if mask is None or landscape_visage(one, column) is None:
            return None
        grid = one.pivot(index="j", columns="i", values="idx").sort_index().to_numpy()
        answers = gens[gens.idx.isin(set(grid[mask].tolist()))]
        unsafe = answers.refused == 0 if column == "asr" else answers.state == "complied"
        if column == "asr" and answers.refused.isna().any():
            return None
        per_prompt = unsafe.groupby(answers.prompt_index).mean()
        rows.append(100.0 - 100.0 * per_prompt.sort_index().to_numpy())
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return np.vstack(rows)


def visage_crossed_interval(
    points: pd.DataFrame, gens: pd.DataFrame, column: str = "asr"
) -> Interval | None:
    """VISAGE with an interval where directions and prompts both vary (crossed t).

    For a claim about prompts like these, not only these prompts; None while unfinished.
    """
    matrix = prompt_matrix(points, gens, column)
    return None if matrix is None else crossed_interval(matrix)


def visage_by_direction(
    points: pd.DataFrame, spec: SweepSpec, column: str = "asr"
) -> dict[str, float] | None:
    """Each landscape's VISAGE keyed by its directions' identity; None while unfinished.

    The key is the directions' content (seed, norm, skip...), so two runs along the
    same seeds pair up whatever their model or system prompt.
    """
    scores = direction_visages(points, column)
    if any(v is None for v in scores):
        return None
    keys = [json.dumps([d.key_dict() for d in r], sort_keys=True) for r in spec.replicates()]
    return dict(zip(keys, scores, strict=True))  # type: ignore[arg-type]


def compare_visage(
    a: tuple[pd.DataFrame, SweepSpec], b: tuple[pd.DataFrame, SweepSpec], column: str = "asr"
) -> Comparison:
    """Run A's VISAGE minus run B's: paired over shared directions when the prompts match.

    Each pair is ``(points, spec)``. Runs on different prompts, or with fewer than
    ``intervals.MIN_DIRECTIONS`` shared directions, are compared unpaired (Welch).
    """
    (points_a, spec_a), (points_b, spec_b) = a, b
    same = spec_a.prompts.key_dict() == spec_b.prompts.key_dict()
    return compare(
        visage_by_direction(points_a, spec_a, column),
        visage_by_direction(points_b, spec_b, column),
        same_prompts=same,
    )


def with_states(store: Store, run_id: str, points: pd.DataFrame, judge: str) -> pd.DataFrame:
    """``points`` plus the states' shares (percent) and ``coherent_asr`` per point.

    A harm judge (``decides_harm``) adds the fourth state, ``harmful``, and its
    ``coherent_asr`` counts complied and harmful answers. Answers the judge left
    unparsed are left out of the shares, as they are of ASR. NaN where a point's
    answers are unfinished or their coherence is not measured.
    """
    names = HARM_STATES if decides_harm(judge) else STATES
    gens = store.generations_frame(run_id, judge)
    gens = gens.assign(state=answer_states(gens))
    gens = gens[gens.state != "unparsed"]
    by_point = {idx: shares(group.state, names) or {} for idx, group in gens.groupby("idx")}
    table = pd.DataFrame.from_dict(by_point, orient="index", columns=list(names))
    out = points.merge(table, left_on="idx", right_index=True, how="left")
    attacks = out["complied"] + out["harmful"] if "harmful" in names else out["complied"]
    return out.assign(coherent_asr=attacks)


def answer_states(gens: pd.DataFrame) -> pd.Series:
    """Each answer's state under the run's judge (None: not yet known).

    ``unparsed`` where the judge's reply held no verdict (``Verdict.unparsed``).
    """
    return pd.Series(
        [
            None if pd.isna(r.refused)
            else "unparsed" if is_unparsed(getattr(r, "evidence", None))
            else state(
                bool(r.refused), r.text, r.coherence_nll, r.repetition,
                harmful=is_harmful(getattr(r, "evidence", None)),
            )
            for r in gens.itertuples()
        ],
        index=gens.index,
        dtype=object,
    )  # fmt: skip


EdgePair = tuple[float | None, float | None]  # (left, right) alpha; None: not reached


def direction_edges(points: pd.DataFrame, spec: SweepSpec) -> list[EdgePair | None]:
    """Each landscape's basin edges along alpha (``[left, right]``); None if unknown.

    A basin-radius run replays its search over the stored probes (None while a probe
    is missing); a 1D grid reads them off its points (``visage.grid_edges``).
    """
    threshold = spec.basin.threshold
    out: list[EdgePair | None] = []
    for one in by_direction(points):
        if spec.measure == "basin-radius":
            out.append(_replayed_edges(one, spec))
        elif spec.ndim == 1 and not one.empty and not one.asr.isna().any():
            out.append(grid_edges(one.alpha.tolist(), one.asr.tolist(), threshold))
        else:
            out.append(None)
    return out


class _Missing(Exception):
    pass


def _replayed_edges(points: pd.DataFrame, spec: SweepSpec) -> EdgePair | None:
    stored = {float(r.alpha): r for r in points.itertuples()}

    def asr_at(alpha: float) -> float | None:
        row = stored.get(alpha)
        if row is None or pd.isna(row.status):
            raise _Missing
        return None if pd.isna(row.asr) else float(row.asr)

    try:
        edges = bisection.search(asr_at, spec.basin)
    except _Missing:
        return None
    return edges.left, edges.right


def basin_mask(points: pd.DataFrame) -> np.ndarray | None:
    """The basin as a boolean (n_beta, n_alpha) mask; None while incomplete.

    Each direction has its own basin: a frame of several has none (also None).
    """
    if points.empty or points["asr"].isna().any() or len(by_direction(points)) > 1:
        return None
    grid = asr_grid(points)
    if grid.shape[0] == 1:
        lo, hi = basin_window(grid[0])
        mask = np.zeros(grid.shape, dtype=bool)
        mask[0, lo : hi + 1] = True
        return mask
    return basin_mask_2d(grid)


def landscape(store: Store, run_id: str, judge: str = "keyword") -> dict[str, Any]:
    """One object with ``run_id``, ``spec``, ``provenance``, ``visage`` and ``points``.

    Each point has ``coords`` ``[alpha, beta]``, ``asr`` (percent; None until done),
    ``n_prompts`` and ``status``; a multiple-choice run's points add ``accuracy``
    (percent correct) and it has no VISAGE. A run of several directions (or a basin-radius
    search) adds ``directions``: per seed its ``seed``, ``visage``, ``edges`` and
    ``points``, with ``visage_ci`` ``[low, high]`` and the interval's ``ci_method``.
    This is ``show --json``'s format; scripts rely on it.
    """
    run = store.run(run_id)
    spec = SweepSpec.from_dict(run["spec"])
    frame = store.points_frame(run["run_id"], judge).sort_values(["rep", "j", "i"])
    frame = with_states(store, run["run_id"], frame, judge)
    search = spec.measure == "basin-radius"
    if spec.measure == "multiple-choice":
        frame = frame.assign(accuracy=frame.idx.map(accuracy(store, run["run_id"])))
    out = {
        "run_id": run["run_id"],
        "label": run["label"],
        "labels": run["labels"],
        "judge": judge,
        "spec": run["spec"],
        "provenance": run["provenance"],
        "visage": None if search else run_visage(frame),
        "coherent_visage": None if search else run_visage(frame, "coherent_asr"),
        "coherence_thresholds": dataclasses.asdict(THRESHOLDS),
        "points": _points_json(frame, tagged=len(spec.replicates()) > 1),
    }
    replicates = spec.replicates()
    if len(replicates) > 1 or search:
        parts = by_direction(frame)
        edges = direction_edges(frame, spec)
        out["directions"] = [
            {
                "seed": [d.seed for d in replicates[rep] if d.kind == "random"],
                "visage": None if search else landscape_visage(part),
                "coherent_visage": None if search else landscape_visage(part, "coherent_asr"),
                "edges": None if edge is None else list(edge),
                "points": _points_json(part.sort_values("alpha") if search else part),
            }
            for rep, (part, edge) in enumerate(zip(parts, edges, strict=True))
        ]
        interval = None if search else visage_interval(frame)
        out["visage_ci"] = None if interval is None or interval.low is None else [
            interval.low, interval.high
        ]  # fmt: skip
        out["ci_method"] = None if interval is None else interval.method
        out["ci_resamples"] = None if interval is None else interval.resamples
        gens = store.generations_frame(run["run_id"], judge)
        crossed = None if search else visage_crossed_interval(frame, gens)
        out["visage_ci_prompts"] = None if crossed is None or crossed.low is None else [
            crossed.low, crossed.high
        ]  # fmt: skip
        out["ci_prompts_method"] = None if crossed is None else crossed.method
        coherent = None if search else visage_interval(frame, "coherent_asr")
        out["coherent_visage_ci"] = None if coherent is None or coherent.low is None else [
            coherent.low, coherent.high
        ]  # fmt: skip
    return out


def format_landscape(data: dict[str, Any]) -> str:
    """``landscape``'s object as ``show`` prints it: identity, points, directions, VISAGE."""
    prov = data["provenance"]
    lines = [
        f"run {data['run_id']}  {data['label']}",
        f"model {prov['model']['name']} ({prov['model']['device']}, {prov['model']['dtype']})",
        f"prompts {prov['prompt_set']['name']} x{prov['prompt_set']['n_prompts']}, "
        f"system prompt {data['spec']['system_prompt']['preset']}",
    ]
    if prov.get("cos_d1_d2") is not None:
        lines.append(f"cos(d1, d2) = {prov['cos_d1_d2']:.2e}")
    choice = data["spec"].get("measure") == "multiple-choice"
    value = "accuracy" if choice else "asr"
    lines.append(f"{'alpha':>9} {'beta':>9} {'acc. %' if choice else 'ASR %':>7}  status")
    for pt in data["points"]:
        shown = "-" if pt[value] is None else f"{pt[value]:.1f}"
        lines.append(
            f"{pt['coords'][0]:>9.4f} {pt['coords'][1]:>9.4f} {shown:>7}  "
            f"{pt['status'] or 'pending'}"
        )
    for k, one in enumerate(data.get("directions", [])):
        score = "-" if one["visage"] is None else f"{one['visage']:.2f}"
        coherent = "-" if one["coherent_visage"] is None else f"{one['coherent_visage']:.2f}"
        edges = one["edges"] or ["?", "?"]
        shown = ["beyond" if e is None else f"{e:+.4f}" for e in edges] if one["edges"] else edges
        lines.append(
            f"direction {k} seed {one['seed']}: VISAGE {score}, coherent VISAGE {coherent}, "
            f"edges {shown[0]} .. {shown[1]}"
        )
    visage = data["visage"]
    if data["spec"].get("measure") not in ("basin-radius", "multiple-choice"):
        lines.append(
            "VISAGE " + ("pending (run not complete)" if visage is None else f"{visage:.2f}")
        )
        coherent = data["coherent_visage"]
        lines.append(
            "coherent VISAGE "
            + (
                f"{coherent:.2f}"
                if coherent is not None
                else "pending (the run, or its coherence, "
                f"is not complete; `rescore {data['run_id']} --coherence` measures it)"
            )
        )
    for name in ("visage", "coherent_visage"):
        if data.get(f"{name}_ci"):
            low, high = data[f"{name}_ci"]
            title = name.replace("_", " ").replace("visage", "VISAGE")
            lines.append(f"{title} 95% CI [{low:.2f}, {high:.2f}] ({data['ci_method']})")
    return "\n".join(lines)


def _points_json(frame: pd.DataFrame, tagged: bool = False) -> list[dict[str, Any]]:
    """Points as JSON; ``tagged`` adds each one's ``direction`` (index into directions)."""
    out = []
    for row in frame.itertuples():
        point = {
            "coords": [row.alpha, row.beta],
            "asr": None if pd.isna(row.asr) else float(row.asr),
            "n_prompts": None if pd.isna(row.n_prompts) else int(row.n_prompts),
            "status": None if pd.isna(row.status) else row.status,
            "states": None
            if pd.isna(row.complied)
            else {state: float(getattr(row, state)) for state in STATES},
        }
        if "accuracy" in frame:
            point["accuracy"] = None if pd.isna(row.accuracy) else float(row.accuracy)
        if tagged:
            point["direction"] = int(row.rep)
        out.append(point)
    return out


def accuracy(store: Store, run_id: str) -> pd.Series:
    """Percent of questions answered right at each point (by ``idx``) of a choice run."""
    values = store.measures_frame(run_id)
    if values.empty:
        return pd.Series(dtype=float)
    return 100.0 * values.groupby("idx").correct.mean()


def disagreement(store: Store, run_id: str, judge_a: str, judge_b: str) -> pd.DataFrame:
    """Per grid point, the share of prompts (percent) on which two judges disagree.

    One row per point with ``idx, i, j, alpha, beta`` and ``disagree``; NaN where
    either judge has not scored the point.
    """
    a = store.generations_frame(run_id, judge_a)
    b = store.generations_frame(run_id, judge_b)
    both = a.merge(b[["idx", "prompt_index", "refused"]], on=["idx", "prompt_index"])
    both = both[both.refused_x.notna() & both.refused_y.notna()]
    share = (
        both.assign(differ=both.refused_x != both.refused_y)
        .groupby("idx")
        .differ.mean()
        .mul(100.0)
        .rename("disagree")
    )
    grid = store.points_frame(run_id, judge_a)[["idx", "i", "j", "alpha", "beta"]]
    return grid.merge(share, left_on="idx", right_index=True, how="left")


def run_name(run: dict[str, Any]) -> str:
    """Every label a run was launched under, as one name; '' when it has none."""
    return " / ".join(run["labels"])


def run_title(run: dict[str, Any]) -> str:
    """A short human name: every label it was launched under, model, system prompt."""
    spec = run["spec"]
    model = spec["model"]["path"] or "bundled"
    preset = spec["system_prompt"]["preset"]
    return f"{run_name(run) or run['run_id'][:8]} · {model} · system={preset}"


def prompt_across_grid(gens: pd.DataFrame, prompt_index: int) -> pd.DataFrame:
    """One prompt's answer and verdict at every point, with its distance from the model."""
    rows = gens[gens.prompt_index == prompt_index].copy()
    rows["radius"] = np.hypot(rows.alpha, rows.beta)
    return rows.sort_values(["radius", "alpha", "beta"])


def flip_radius(across: pd.DataFrame) -> float | None:
    """Smallest distance from the model at which a prompt's verdict flips.

    The distance is |alpha| in 1D and sqrt(alpha^2 + beta^2) in 2D; the flip is against
    the verdict at the origin. None if it never flips or the origin is absent.
    """
    origin = at_origin(across)
    if origin.empty or origin.refused.isna().all():
        return None
    flipped = across[across.refused.notna() & (across.refused != origin.refused.iloc[0])]
    return None if flipped.empty else float(flipped.radius.min())
