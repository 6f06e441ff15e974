"""The paper's experiments in miniature: ``python -m landscape_core paper``.

This module declares the experiments and runs them; ``paper_render`` writes the report.
Every number goes through the store (a second run is instant) and ``docs/paper-mini.md``
is written from the stored results, with each experiment's config saved beside it.
A first run takes about three and a half hours on 2 idle CPU cores (the report's header gives
the compute by section, and README the budget); it resumes where it stopped. The
aligned demo's landscapes come first, then Table 1's models (each finetune's first
training seed), then the other training seeds, section 6's jailbreak landscapes,
section 7 and section 6's defence.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from landscape_core import sweep
from landscape_core.defence import defend
from landscape_core.defence.report import over_member_sets
from landscape_core.defence.spec import defence_id
from landscape_core.errors import UserError
from landscape_core.finetune import FinetuneSpec, finetune
from landscape_core.plan.identity import plan
from landscape_core.readers.capability import FLUENCY_PROMPTS, companions
from landscape_core.recipes.paper_records import Experiment, Paper, Sizes
from landscape_core.recipes.paper_render import write_report
from landscape_core.recipes.paper_risk import Section7, Setup, run_section7
from landscape_core.rescore import rescore
from landscape_core.risk.spec import DEFAULTS as RISK
from landscape_core.spec.config import (
    GenerationSpec,
    JudgeSpec,
    ModelSpec,
    PromptSetSpec,
    SweepSpec,
)
from landscape_core.spec.jailbreak import templates
from landscape_core.store.runs import Store

log = logging.getLogger(__name__)

ALIGNED = {"kind": "bundled", "variant": "aligned"}
LANDSCAPE_PROMPTS = {"source": "advbench", "start": 0, "limit": 20}  # held out
ASR_PROMPTS = {"source": "advbench", "start": 0, "limit": 80}  # the paper's 80, held out
# section 7 evaluates 10 checkpoints of each finetune: on the landscapes' 20 prompts, a
# quarter of the 80's cost, each checkpoint's ASR known to 5 points (its threshold is 50)
CHECKPOINT_PROMPTS = LANDSCAPE_PROMPTS
# the demo's basin and its fall: every edge of its 10 directions lies within 0.3 and 17
# of 20 within 0.2, and the bisection below finds each one; beyond 0.2 the dense grid
# read ASR 100 at 39 of 40 points, so the budget goes to directions, not to that band
RANDOM_GRID = [{"start": -0.2, "stop": 0.2, "num": 9}]
INTERPOLATION_GRID = [{"start": -0.25, "stop": 1.25, "num": 7}]  # past both ends
# the landscapes' answers are whole: coherence and the second judge read all of each
TOKENS = {"max_new_tokens": 32}
# sections 6 and 7 judge by keyword only: a refusal stops at its keyword, which leaves
# every keyword verdict as full generation gives it (a third less generation)
STOPPED = {"max_new_tokens": 32, "stop": "verdict"}
SECOND_JUDGE = "refusal-v2"  # Tables 1 and 2 show its VISAGE beside the keyword's
SEEDS = tuple(range(123, 133))  # Fig. 2(b) and Tables 1 and 2 run over ten directions
# every finetune of Table 1 is trained with each seed; seeds after the first are swept
# along the first REPLICA_DIRECTIONS directions, for the spread over training seeds
TRAINING_SEEDS = (0, 1, 2)
REPLICA_DIRECTIONS = 3  # the spread's question is the training seed, not the direction
# basin or breakage: fluency costs about what the answers cost, so it is measured along
# the first 5 directions, where the aligned demo's gap interval (+-0.014 alpha) is
# already finer than the grid's step (0.05): more directions would not sharpen the answer
FLUENCY_DIRECTIONS = 5
# ... and, for the aligned demo, again near its edges on a finer grid: on the dense grid
# every edge of its (ASR 0.10-0.20, fluency 0.15) is within one step (0.05) of the
# other, so its gap is not resolved there; here each edge is known to 0.01
FINE_GRID = [{"start": -0.2, "stop": 0.2, "num": 41}]  # the dense grid's points shared
REFINED = ("aligned",)
BASIN = {"tolerance": 0.025, "max_alpha": 0.3}  # half the grid's step; past it, to 0.3
SHOTS = (10, 50, 100)
PRESETS = ("default", "empty", "aoa", "llama2")
# Section 6 without selection bias: the attack template is the one with the highest ASR
# at the model on the landscapes' goals (AdvBench 0-19, the jailbreak landscapes' alpha
# = 0), and the defence is evaluated on goals 20-79, which never informed that choice.
# Every template is a candidate of the adaptive attacker and reported. The defence is
# drawn 10 times (member seeds 1000, ..., 10000) so its intervals hold its own randomness:
# the crossed interval needs MIN_DIRECTIONS (5) member sets, and its draws differ so much
# (defended ASR 0 to 97) that it covers 95% only from about 10 (tests/test_intervals.py).
DEFENCE_GOALS = {"source": "advbench", "start": 20, "limit": 60}
DEFENDER_SEEDS = tuple(range(1000, 11000, 1000))
DEFENCE = {"members": 3, "radius": 0.05, "seed": DEFENDER_SEEDS[0], "vote": "majority",
           "suffix_steps": 10, "suffix_goals": 4}  # fmt: skip
JAILBREAK = "novel-chapter"  # configs/defend.yaml's template; the paper picks its own


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


def _first(n: int) -> list[dict[str, Any]]:
    """The first ``n`` random directions, as one direction entry."""
    return [{"kind": "random", "seeds": list(SEEDS[:n])}]


def _origin_asr(name: str, model: dict[str, Any]) -> Experiment:
    grid = [{"start": 0.0, "stop": 0.0, "num": 1}]
    one = [{"kind": "random", "seed": SEEDS[0]}]  # the origin: no direction enters its key
    return _sweep(name, model, prompts=ASR_PROMPTS, grid=grid, directions=one)


def defence_spec(template: str = JAILBREAK, seed: int = DEFENDER_SEEDS[0]) -> SweepSpec:
    """Section 6's defence of ``template`` with member seeds from ``seed``.

    configs/defend.yaml is this with the defaults (a test keeps them equal).
    """
    return SweepSpec.from_dict({
        "label": f"defence: {template}",
        "model": ALIGNED,
        "prompts": {"source": "jailbreak", "template": template, "goals": DEFENCE_GOALS},
        "directions": [{"kind": "random", "seed": SEEDS[0], "norm": "layer"}],
        "grid": RANDOM_GRID,
        "generation": STOPPED,
        "defend": {**DEFENCE, "seed": seed},
    })  # fmt: skip


def strongest(jailbreaks: dict[str, Experiment], store: Store) -> str | None:
    """The template with the highest ASR at the model on the landscapes' goals.

    The library's order breaks ties; None while a jailbreak landscape is unfinished.
    """
    at_model = {name: e.origin_asr(store) for name, e in jailbreaks.items()}
    if not at_model or any(v is None or v != v for v in at_model.values()):
        return None
    return max(at_model, key=lambda name: at_model[name])  # type: ignore[arg-type, return-value]


def _jailbreak(name: str) -> Experiment:
    """A template's landscape along the first seed, over the landscapes' 20 goals."""
    prompts = {"source": "jailbreak", "template": name, "goals": LANDSCAPE_PROMPTS}
    one = [{"kind": "random", "seed": SEEDS[0]}]
    return _sweep(f"jailbreak {name}", ALIGNED, prompts=prompts, directions=one, generation=STOPPED)


def _search() -> Experiment:
    """The basin's edges by bisection, on a lattice twice as fine as the dense grid."""
    data = {
        "label": "paper: aligned, basin search",
        "model": ALIGNED,
        "prompts": LANDSCAPE_PROMPTS,
        "directions": [{"kind": "random", "seeds": list(SEEDS)}],
        "generation": TOKENS,
        "measure": "basin-radius",
        "basin": BASIN,
    }
    return Experiment("aligned, basin search", SweepSpec.from_dict(data))


def run_paper(
    store: Store,
    out: Path = Path("docs/paper-mini.md"),
    progress: Callable[[str], None] = print,
    compute: bool = True,
) -> Path:
    """Train the adapters, run every sweep (reusing stored points), write the report.

    With ``compute=False`` nothing is trained or generated: the report is written from
    what the store holds, and unfinished experiments read "pending".
    """
    started = time.monotonic()

    def run(experiments: list[Experiment]) -> None:
        _run_all(experiments, store, compute, progress)

    seeds = [_sweep(f"aligned, seed {s}", ALIGNED, directions=[{"kind": "random", "seed": s}])
             for s in SEEDS]  # fmt: skip
    table2 = {
        preset: _sweep(
            f"aligned, system prompt {preset}", ALIGNED, system_prompt={"preset": preset}
        )
        for preset in PRESETS
    }
    search = _search()
    # the aligned demo's experiments need no finetune: they come first, so an interrupted
    # first run has its headline landscapes before the hours of training
    run([*seeds, *table2.values(), search])
    # Table 1's headline models (each finetune's first training seed) are trained and
    # swept before the other training seeds, section 6 and section 7
    models = {"aligned": ALIGNED, **_train(store, compute, progress, TRAINING_SEEDS[:1])}
    paper = _paper(seeds, table2, search, models)
    table1 = [e for pair in paper.table1.values() for e in pair]
    # the basin-or-breakage runs are Table 1's own points along its first directions
    run([*table1, *paper.interpolations.values(), *paper.breakage.values(),
         *paper.refined.values()])  # fmt: skip
    fluency = _basin_or_breakage(paper, store, compute, progress)
    replicas = _train(store, compute, progress, TRAINING_SEEDS[1:])
    paper.replicas = {
        name: (
            _sweep(name, m, directions=_first(REPLICA_DIRECTIONS)),
            _origin_asr(f"{name} ASR", m),
        )
        for name, m in replicas.items()
    }
    run([e for pair in paper.replicas.values() for e in pair])
    run(list(paper.jailbreaks.values()))  # section 6's landscapes
    finetunes = {name: Path(m["adapter"]) for name, m in models.items() if "adapter" in m}
    # section 7 before section 6's defence: it is a fraction of the defence's cost, so a
    # stopped run leaves the one long section pending, not both
    section7 = run_section7(store, finetunes, _section7_setup(), compute, progress)
    shield = _defend(paper, store, compute, progress)
    log.info("paper: %.1f s this run", time.monotonic() - started)
    adapters = [*finetunes.values(), *(Path(m["adapter"]) for m in replicas.values())]
    spent = {
        "training the finetunes": sum(_training_seconds(a) for a in adapters),
        **_compute(store, _sections(paper, fluency, shield, section7, store)),
    }
    return write_report(store, out, paper, spent, shield.combined, section7)


def _paper(
    seeds: list[Experiment],
    table2: dict[str, Experiment],
    search: Experiment,
    models: dict[str, dict[str, Any]],
) -> Paper:
    """Every experiment, by section; the training seeds after the first are added later."""
    return Paper(
        seeds=seeds,
        table1={
            name: (_sweep(name, m), _origin_asr(f"{name} ASR", m)) for name, m in models.items()
        },
        table2=table2,
        interpolations={
            name: _sweep(
                f"aligned -> {name}",
                ALIGNED,
                directions=[{"kind": "interpolation", "target": m}],
                grid=INTERPOLATION_GRID,
            )
            for name, m in models.items()
            if name != "aligned"
        },
        replicas={},
        breakage={
            name: _sweep(
                f"{name}, first {FLUENCY_DIRECTIONS} directions",
                m,
                directions=_first(FLUENCY_DIRECTIONS),
            )
            for name, m in models.items()
        },
        refined={
            name: _sweep(
                f"{name}, first {FLUENCY_DIRECTIONS} directions near the edges",
                models[name],
                directions=_first(FLUENCY_DIRECTIONS),
                grid=FINE_GRID,
            )
            for name in REFINED
        },
        search=search,
        jailbreaks={name: _jailbreak(name) for name in templates()},
        sizes=Sizes(
            SEEDS,
            RANDOM_GRID,
            INTERPOLATION_GRID,
            BASIN,
            SECOND_JUDGE,
            REPLICA_DIRECTIONS,
            DEFENCE_GOALS,
            FINE_GRID,
            CHECKPOINT_PROMPTS,
        ),
    )


def _basin_or_breakage(
    paper: Paper, store: Store, compute: bool, progress: Callable[[str], None]
) -> list[SweepSpec]:
    """The second judge on Tables 1 and 2, then fluency along each model's first directions.

    Returns the fluency companions' specs (their compute is counted in the header).
    """
    along = {**paper.breakage, **{f"{n} (near the edges)": e for n, e in paper.refined.items()}}
    fluency = [companions(e.spec, FLUENCY_PROMPTS[1])["fluency"] for e in along.values()]
    if not compute:
        return fluency
    for e in [pair[0] for pair in paper.table1.values()] + list(paper.table2.values()):
        progress(f"{SECOND_JUDGE} on {e.name}")  # it reads the stored answers: no generation
        rescore(store, e.run_id, JudgeSpec(name=SECOND_JUDGE), only_missing=True)
    for name, companion in zip(along, fluency, strict=True):
        progress(f"fluency along {name}'s first directions (basin or breakage)")
        sweep.run(companion, store)
    return fluency


def _section7_setup() -> Setup:
    """Section 7's preflight and checkpoints, on the landscapes' prompts and generation."""
    return Setup(
        risk=dataclasses.replace(
            RISK, model=ModelSpec.from_dict(ALIGNED),
            prompts=PromptSetSpec.from_dict(LANDSCAPE_PROMPTS),
            generation=GenerationSpec.from_dict(STOPPED),
        ),
        checkpoints=PromptSetSpec.from_dict(CHECKPOINT_PROMPTS),
    )  # fmt: skip


def _sections(
    paper: Paper, fluency: list[SweepSpec], shield: Shield, section7: Section7, store: Store
) -> dict[str, list[str]]:
    """Each section of the compute table, with its stored runs."""
    defence_runs = [run for r in shield.reports if r for run in r.get("runs", {}).values()]
    return {
        "Fig. 2(b), Tables 1 and 2, the basin search": [
            e.run_id
            for e in [
                *paper.seeds,
                *(e for pair in paper.table1.values() for e in pair),
                *paper.table2.values(),
                paper.search,
            ]
        ],  # fmt: skip
        f"Table 1's training seeds {', '.join(map(str, TRAINING_SEEDS[1:]))}": [
            e.run_id for pair in paper.replicas.values() for e in pair
        ],
        "fluency along Table 1's landscapes": [_planned(c, store) for c in fluency],
        "basin or breakage near the edges (answers)": [e.run_id for e in paper.refined.values()],
        "Fig. 1(B) interpolations": [e.run_id for e in paper.interpolations.values()],
        "section 6: jailbreak landscapes": [e.run_id for e in paper.jailbreaks.values()],
        f"section 6: the defence, {len(DEFENDER_SEEDS)} member sets": defence_runs,
        "section 7: trajectories": _section7_runs(section7, store),
    }


@dataclasses.dataclass(frozen=True)
class Shield:
    """Section 6's defence: the member sets combined, and each set's own report."""

    combined: dict[str, Any] | None  # None until every member set is stored
    reports: list[dict[str, Any] | None]


def _defend(paper: Paper, store: Store, compute: bool, progress: Callable[[str], None]) -> Shield:
    """Section 6's defence of the strongest template, over every member set."""
    template = strongest(paper.jailbreaks, store)
    if template is None:
        return Shield(None, [])
    defences = [defence_spec(template, seed) for seed in DEFENDER_SEEDS]
    if compute:
        progress(f"defence of {template} and adaptive attack (section 6), "
                 f"{len(DEFENDER_SEEDS)} member sets")  # fmt: skip
        reports = [defend.run(d, store, say=progress).to_dict() for d in defences]
    else:
        reports = [_stored_defence(d, store) for d in defences]
    if any(r is None for r in reports):
        return Shield(None, reports)
    return Shield(over_member_sets(reports), reports)  # type: ignore[arg-type]


def _compute(store: Store, groups: dict[str, list[str]]) -> dict[str, float]:
    """Stored generation seconds by section; a point shared by sections counts once, first."""
    stored, seen, out = set(store.runs_frame().run_id), set(), {}
    for section, runs in groups.items():
        frames = [store.points_frame(r) for r in dict.fromkeys(runs) if r in stored]
        points = pd.concat(frames).drop_duplicates("point_key") if frames else pd.DataFrame()
        mine = points[~points.point_key.isin(seen)] if not points.empty else points
        seen.update(mine.get("point_key", []))
        out[section] = float(mine.seconds.sum()) if not mine.empty else 0.0
    return out


def _run_all(
    experiments: list[Experiment], store: Store, compute: bool, progress: Callable[[str], None]
) -> None:
    """Each experiment's sweep (stored points reused), or its run id read from the store."""
    for n, experiment in enumerate(experiments, start=1):
        if compute:
            progress(f"[{n}/{len(experiments)}] {experiment.name}")
            experiment.run_id = sweep.run(experiment.spec, store).run_id
        else:
            experiment.run_id = _stored_run_id(experiment, store)


def _train(
    store: Store, compute: bool, progress: Callable[[str], None], seeds: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    """Table 1's finetunes trained with ``seeds`` (found when stored), as model specs.

    The first training seed's is named by its recipe ("harmful 10-shot"), the others'
    by recipe and seed ("harmful 10-shot, training seed 1").
    """
    models: dict[str, dict[str, Any]] = {}
    for recipe, shots in [("harmful", k) for k in SHOTS] + [("mix", SHOTS[-1])]:
        for seed in seeds:
            spec = FinetuneSpec(recipe=recipe, shots=shots, base=ModelSpec.from_dict(ALIGNED),
                                seed=seed)  # fmt: skip
            if compute:
                progress(f"finetune {recipe} {shots}-shot, training seed {seed}")
                adapter = finetune(spec, store.models_dir)
            else:
                adapter = store.models_dir / spec.name
            name = f"{recipe} {shots}-shot"
            if seed != TRAINING_SEEDS[0]:
                name += f", training seed {seed}"
            models[name] = {**ALIGNED, "adapter": str(adapter)}
    return models


def _section7_runs(section: Section7, store: Store) -> list[str]:
    """Section 7's stored runs: the plane and every checkpoint's."""
    runs = [section.plane_run] if section.plane_run else []
    runs += [r for path in section.paths.values() if not path.empty for r in path.run_id if r]
    stored = set(store.runs_frame().run_id)
    return [r for r in dict.fromkeys(runs) if r in stored]


def _stored_defence(spec: SweepSpec, store: Store) -> dict[str, Any] | None:
    assert spec.defend is not None
    try:
        found = store.defences.report(defence_id(plan(spec, store.file_digest).run_id, spec.defend))
    except (KeyError, UserError):
        return None
    return found if "per_goal" in found else None  # stored before the member sets: redo


def _stored_run_id(experiment: Experiment, store: Store) -> str:
    """The run id an experiment has, or would have; "" when its model is not trained."""
    return _planned(experiment.spec, store)


def _planned(spec: SweepSpec, store: Store) -> str:
    """A sweep's run id; "" when its model is not trained yet (nothing to plan)."""
    try:
        return plan(spec, store.file_digest).run_id
    except UserError:
        return ""


def _training_seconds(adapter: Path) -> float:
    recipe = adapter / "recipe.json"
    if not recipe.is_file():
        return 0.0
    return float(json.loads(recipe.read_text()).get("seconds", 0.0))
