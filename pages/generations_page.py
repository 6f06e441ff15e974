"""Generations: every answer of a run, filtered; one prompt across the grid; export."""

from __future__ import annotations

import streamlit as st

from landscape_core.readers.export import answers_export, to_csv
from landscape_core.readers.results import flip_radius, prompt_across_grid
from landscape_core.spec.config import PromptSetSpec
from landscape_core.spec.datasets import jailbreak_goals
from pages.common import mark_match, pick_runs, store, transcript_section

st.title("Generations")
runs = pick_runs("Run", key="generations-run")
if not runs:
    st.stop()
run = runs[0]
gens = store().generations_frame(run["run_id"])
if gens.empty:
    st.info("This run has no stored answers yet.")
    st.stop()
gens["verdict"] = gens.refused.map({1: "refused", 0: "complied"}).fillna("not scored")
prompt_spec = PromptSetSpec.from_dict(run["spec"]["prompts"])
jailbreak = prompt_spec.source == "jailbreak"
if jailbreak:  # the wrapped prompt and the goal it wraps, side by side
    goals = jailbreak_goals(prompt_spec)
    gens["goal"] = [goals[i] if i < len(goals) else "" for i in gens.prompt_index]
shown_prompt = ["goal", "prompt"] if jailbreak else ["prompt"]
gens["matched"] = gens.matched.fillna("")


tab_point, tab_prompt, tab_export = st.tabs(["Per point", "One prompt across the grid", "Export"])

with tab_point:
    coords = gens.drop_duplicates("idx")[["idx", "alpha", "beta"]]
    labels = {int(r.idx): f"alpha={r.alpha:+.3f} beta={r.beta:+.3f}" for r in coords.itertuples()}
    idx = st.selectbox("Point", list(labels), format_func=labels.get)
    c1, c2 = st.columns([1, 2])
    verdict = c1.radio("Verdict", ["all", "refused", "complied"], horizontal=True)
    search = c2.text_input("Search prompts and answers")
    view = gens[gens.idx == idx]
    if verdict != "all":
        view = view[view.verdict == verdict]
    if search:
        hit = view.prompt.str.contains(search, case=False, regex=False) | view.text.str.contains(
            search, case=False, regex=False
        )
        view = view[hit]
    view = view.assign(
        answer=[mark_match(t, m) for t, m in zip(view.text, view.matched, strict=True)]
    )
    st.caption(f"{len(view)} answer(s); the text that decided a refusal is marked ⟦like this⟧.")
    st.dataframe(
        view[
            [
                "prompt_index",
                "verdict",
                "matched",
                *shown_prompt,
                "answer",
                "n_tokens",
                "stop_reason",
            ]
        ],  # fmt: skip
        hide_index=True,
        width="stretch",
    )
    if not view.empty:
        shown = st.selectbox(
            "Transcript of the answer to prompt", list(view.prompt_index),
            key="generations-transcript",
        )  # fmt: skip
        picked = view[view.prompt_index == shown].iloc[0]
        transcript_section(run["run_id"], picked.point_key, int(picked.prompt_index))

with tab_prompt:
    prompts = gens.drop_duplicates("prompt_index").set_index("prompt_index").prompt
    index = st.selectbox(
        "Prompt", list(prompts.index), format_func=lambda i: f"{i}: {prompts[i][:90]}"
    )
    across = prompt_across_grid(gens, index)
    radius = flip_radius(across)
    st.metric(
        "Flip radius (smallest distance at which the verdict changes)",
        "never flips" if radius is None else f"{radius:.3f}",
    )
    st.dataframe(
        across.rename(columns={"text": "answer"})[
            ["alpha", "beta", "radius", "verdict", "matched", "answer"]
        ],
        hide_index=True,
        width="stretch",
    )

with tab_export:
    st.caption(
        "One row per answer, as `python -m landscape_core export` writes it: the run's "
        "columns first (concatenable across runs), its state and people's labels."
    )
    out = answers_export(store(), run, "keyword")
    name = f"generations-{run['run_id']}"
    st.download_button("Download CSV", to_csv(out), f"{name}.csv", "text/csv")
    st.download_button(
        "Download JSON",
        out.to_json(orient="records", force_ascii=False),
        f"{name}.json",
        "application/json",
    )
