"""Compare: several runs overlaid (1D) or side by side (2D), and a VISAGE table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from landscape_core.basin.intervals import MIN_DIRECTIONS, t_method
from landscape_core.readers import figures
from landscape_core.readers.capability import capability_frame, capability_summary
from landscape_core.readers.results import (
    compare_visage,
    run_title,
    run_visage,
    visage_interval,
    with_states,
)
from landscape_core.spec.config import DirectionSpec, SweepSpec
from pages.common import mark_match, md_text, one_decimal, pick_runs, store


def _direction(replicates: tuple[tuple[DirectionSpec, ...], ...], rep: int) -> str:
    """'direction 1 (seed 3)': which of a run's random directions the answers lie along."""
    own = replicates[rep] if rep < len(replicates) else ()
    seeds = [d.seed for d in own if d.kind == "random"]
    return f"direction {rep}" + (f" (seed {', '.join(map(str, seeds))})" if seeds else "")


st.title("Compare runs")
st.caption("For example one run per system prompt: launch them together on the Launch page.")
runs = pick_runs("Runs", key="compare-runs", multiple=True)
if not runs:
    st.stop()

scored = [store().judges(r["run_id"]) for r in runs]
shared = [j for j in scored[0] if all(j in others for others in scored[1:])]  # keyword first
if not shared:
    st.warning(
        "These runs share no judge, so their ASR and VISAGE cannot be compared. Score "
        "them with one: `python -m landscape_core rescore RUN --judge NAME`. (A run with "
        "no stored answer has no judge yet.)"
    )
    st.stop()
if st.session_state.get("compare-judge") not in shared:  # e.g. a run without it was added
    st.session_state["compare-judge"] = shared[0]
judge = st.selectbox(
    "Judge", shared, key="compare-judge",
    help="The judges every chosen run was scored with. Add one with "
    "`python -m landscape_core rescore RUN --judge NAME`.",
)  # fmt: skip
st.caption(f"ASR and VISAGE below are by the **{md_text(judge)}** judge, for every run.")

frames = {run_title(r): store().points_frame(r["run_id"], judge) for r in runs}
one_d = {name: f for name, f in frames.items() if f.j.max() == 0}
two_d = {name: f for name, f in frames.items() if f.j.max() > 0}
if one_d:
    st.plotly_chart(figures.overlay_1d(one_d), key="overlay")
if two_d:
    st.plotly_chart(figures.small_multiples_2d(two_d), key="multiples")

rows = []
landscapes = {}
for run in runs:
    spec = run["spec"]
    points = with_states(store(), run["run_id"], store().points_frame(run["run_id"], judge), judge)
    interval = visage_interval(points)
    coherent = visage_interval(points, "coherent_asr")
    name = f"{run_title(run)} [{run['run_id'][:8]}]"
    landscapes[name] = (points, SweepSpec.from_dict(spec))
    rows.append(
        {
            "model": run["provenance"]["model"]["name"],
            "system prompt": spec["system_prompt"]["preset"],
            "VISAGE": None if interval is None else interval.mean,
            "VISAGE ± CI": "-" if interval is None else interval.describe(),
            "coherent VISAGE ± CI": "-" if coherent is None else coherent.describe(),
            "directions": 0 if interval is None else interval.n,
            "run": name,
        }
    )
table = pd.DataFrame(rows).pivot_table(
    index="model", columns="system prompt", values="VISAGE", aggfunc="mean"
)
st.subheader("VISAGE (rows: models, columns: system prompts)")
st.caption(
    f"By the {md_text(judge)} judge. Higher is safer. 'pending': the run's basin is not "
    "finished yet."
)
st.dataframe(table.map(lambda v: one_decimal(v, "pending")))
st.subheader("VISAGE with 95% intervals over directions")
st.caption(
    f"By the {md_text(judge)} judge. "
    f"Mean [low, high] over each run's random directions ({t_method('directions')}). "
    f"Below {MIN_DIRECTIONS} directions there is no interval, each direction's VISAGE is "
    "shown instead: give the run's direction more `seeds` or `repeats`."
)
st.dataframe(
    pd.DataFrame(rows)[["run", "VISAGE ± CI", "coherent VISAGE ± CI", "directions"]],
    hide_index=True,
)
names = list(landscapes)
verdicts = [
    {
        "run A": a,
        "run B": b,
        "VISAGE, A - B": compare_visage(landscapes[a], landscapes[b]).describe(),
    }
    for k, a in enumerate(names)
    for b in names[k + 1 :]
]
if verdicts:
    st.caption(
        "A - B with its 95% interval, paired over the directions both runs share (same "
        "seeds, same prompts); runs that share none are compared unpaired (Welch). "
        "*A higher* or *A lower*: the interval excludes 0 on that side; *not shown*: it "
        "holds 0, which is absence of "
        "evidence, and the cell says the smallest difference the runs could have detected."
    )
    st.dataframe(pd.DataFrame(verdicts), hide_index=True)

st.subheader("One prompt, side by side")
st.caption(
    "The same prompt at the same point along the same direction in each run (e.g. under "
    "each system prompt), the text that decided the verdict marked ⟦like this⟧. Only "
    "prompts, points and directions that every chosen run has are offered."
)
answers = {r["run_id"]: store().generations_frame(r["run_id"], judge) for r in runs}
answers = {k: v for k, v in answers.items() if not v.empty}
if len(answers) < 2:
    st.info("Choose two or more runs with stored answers.")
else:
    directions = sorted(set.intersection(*(set(f.rep) for f in answers.values())))
    seeds = {r["run_id"]: SweepSpec.from_dict(r["spec"]).replicates() for r in runs}
    rep = st.selectbox(
        "Direction", directions, key="side-direction",
        format_func=lambda k: f"direction {k}",
        help="A run of several random directions has answers along each; the same "
        "direction index pairs the runs' k-th seeds.",
    )  # fmt: skip
    frames = [f[f.rep == rep] for f in answers.values()]
    prompts = set.intersection(*(set(f.prompt) for f in frames))
    points = set.intersection(*(set(zip(f.alpha, f.beta, strict=True)) for f in frames))
    if not prompts or not points:
        st.info("These runs share no prompt at a common point.")
    else:
        first = frames[0]
        order = first[first.prompt.isin(prompts)].drop_duplicates("prompt").prompt.tolist()
        prompt = st.selectbox("Prompt", order, format_func=lambda p: p[:100], key="side-prompt")
        spots = sorted(points, key=lambda ab: (abs(ab[0]) + abs(ab[1]), ab))
        alpha, beta = st.selectbox(
            "Point", spots, format_func=lambda ab: f"alpha={ab[0]:+.3f} beta={ab[1]:+.3f}",
            key="side-point",
        )  # fmt: skip
        titles = {r["run_id"]: run_title(r) for r in runs}
        columns = st.columns(len(answers))
        for column, run_id, frame in zip(columns, answers, frames, strict=True):
            hit = frame[(frame.prompt == prompt) & (frame.alpha == alpha) & (frame.beta == beta)]
            with column:
                st.caption(f"{md_text(titles[run_id])} · {_direction(seeds[run_id], rep)}")
                if hit.empty:
                    st.text("(not computed yet)")
                    continue
                row = hit.iloc[0]
                verdict = {1: "refused", 0: "complied"}.get(row.refused, "not scored")
                st.text(f"{judge}: {verdict}")
                st.code(mark_match(row.text, row.matched), language=None, wrap_lines=True)

st.subheader("Capability beside safety")
st.caption(
    "From each run's capability sweeps on the same grid (Landscape page: *Measure "
    "capability on this grid*). Empty: not measured yet."
)
capability = []
for run in runs:
    figures_ = capability_summary(capability_frame(store(), run["run_id"]))
    capability.append(
        {
            "run": f"{run_title(run)} [{run['run_id'][:8]}]",
            "VISAGE": one_decimal(
                run_visage(store().points_frame(run["run_id"], judge)), "pending"
            ),
            **{k: one_decimal(v, "not measured") for k, v in figures_.items()},
        }
    )
st.dataframe(pd.DataFrame(capability), hide_index=True)
