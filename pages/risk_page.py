"""Finetuning risk: a preflight before training, and finished finetunes' trajectories.

The preflight is the lookahead (``risk DATA``): k real steps of the user's recipe in a
throwaway copy; this page lists its stored reports (``risk.report.stored_lookaheads``)
and the validation table. The old measure, two basin searches (``risk.spec``) the
worker runs as ordinary jobs, stays as a baseline tab that queues them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.plan.identity import plan, plane_key
from landscape_core.readers import figures
from landscape_core.risk.report import (
    Unfinished,
    calibrated_risk,
    report,
    sampled_note,
    stored_lookaheads,
    validated_neighbours,
)
from landscape_core.risk.spec import DEFAULTS, model_spec, risk_sweeps
from landscape_core.risk.validation import (
    DATASET_MEASURES,
    RESULTS,
    load,
    measured_datasets,
    riskier_higher,
)
from landscape_core.spec.config import (
    FINETUNE_RECIPES,
    SHOT_RECIPES,
    BasinSpec,
    PromptSetSpec,
    SweepSpec,
    TrainingDataSpec,
)
from landscape_core.store.jobs import ACTIVE
from landscape_core.submit import submit
from pages.common import checkpoint_table, md_text, show_user_error, store, training_upload

LEVELS = {"high": st.error, "elevated": st.warning, "typical": st.success,
          "unknown": st.info, "outside": st.error, "low": st.success}  # fmt: skip

st.title("Finetuning risk")
st.caption(
    "Before training: take the first steps of your own finetuning recipe on the data, "
    "in a throwaway copy, and measure how much refusal on held-out harmful prompts it "
    "loses per unit of generic drift (token KL to the original on MT-Bench and "
    "XSTest-safe). After training: the finetune's path through its landscape."
)

tab_lookahead, tab_preflight, tab_paths = st.tabs(
    ["Preflight", "Edge baseline (old measure)", "Trajectories"]
)

with tab_lookahead:
    st.markdown(
        "Run it from a terminal with the recipe you will train with:\n\n"
        "`python -m landscape_core risk PAIRS.csv --lr 1e-3 --lora-rank 8 --batch-size 8`"
        "\n\n`python -m landscape_core risk A.csv B.csv --rank` ranks several datasets."
    )
    reports = stored_lookaheads(store().root)
    validated = load(RESULTS)
    if not reports:
        st.info("No preflight yet in this store.")
    for one in reports:
        name = str(one.extra.get("data", "the data"))
        st.subheader(md_text(name))
        cols = st.columns(4)
        cols[0].metric("Score: -delta / sqrt(KL)", f"{one.score:.3g}")
        cols[1].metric("Refusal log-odds delta", f"{one.delta:+.3g}")
        cols[2].metric("Token KL to the original", f"{one.kl:.3g}")
        cols[3].metric("Preflight / finetune (s)",
                       f"{one.seconds:.0f} / ~{one.finetune_estimate:.0f}")  # fmt: skip
        LEVELS[one.verdict.level](md_text(one.verdict.text))
        st.caption(md_text(f"Calibrated risk: {calibrated_risk(one, validated)}."))
        st.caption(md_text(f"What such data did: {validated_neighbours(one, validated)}."))
        steps = pd.DataFrame(
            [{"step": s.step, "batch loss": s.loss, "refusal log-odds": s.refusal_logit,
              "over-refusal log-odds": s.over_refusal_logit, **dict(s.kl)} for s in one.steps]
        )  # fmt: skip
        st.dataframe(steps, hide_index=True)
        if "anchoring" in one.extra:
            cols = st.columns(2)
            cols[0].metric("Anchoring: toward compliance minus refusal",
                           f"{one.extra['anchoring']:+.4f}")  # fmt: skip
            cols[1].metric("Shallowness: gradient share of the first 5 answer tokens",
                           f"{one.extra['shallowness']:.2f}")  # fmt: skip
            st.caption("The rows that pull hardest toward compliance: remove these first"
                       f"{sampled_note(one)}.")  # fmt: skip
            st.dataframe(pd.DataFrame(one.extra.get("top_rows", [])), hide_index=True)
    if not validated.empty:
        st.subheader("Validated datasets: preflight against the real finetune")
        st.caption("docs/risk-validation.csv: one row per dataset and training seed; the "
                   "outcome is the finetuned model's ASR on AdvBench 0-99.")  # fmt: skip
        datasets = riskier_higher(measured_datasets(validated))
        if not datasets.empty:
            st.plotly_chart(figures.risk_validation(datasets, DATASET_MEASURES))
        st.dataframe(validated, hide_index=True)


@st.cache_data(ttl=5)
def _plane_runs() -> dict[str, list[str]]:
    """2D runs by the plane of weights they span (``identity.plane_key``)."""
    out: dict[str, list[str]] = {}
    for run_id in store().runs_frame().run_id:
        spec = SweepSpec.from_dict(store().run(run_id)["spec"])
        if spec.ndim == 2 and spec.directions[0].kind == "interpolation":
            try:
                key = plane_key(plan(spec, store().file_digest))
            except UserError:  # its model files moved
                continue
            out.setdefault(key, []).append(run_id)
    return out


with tab_preflight:
    left, right = st.columns(2)
    with left:
        source = st.radio("Data", [*FINETUNE_RECIPES, "upload a CSV"], horizontal=True,
                          help="harmful: K harmful question-answer pairs; sure-prefix: K goals "
                          "with only their 'Sure, here is' openings; mix: K harmful pairs and "
                          "K refused goals; align: the aligned demo's own recipe")  # fmt: skip
        shots = 0
        path = ""
        if source in SHOT_RECIPES:
            shots = int(st.number_input("Shots (K)", min_value=1, max_value=400, value=10))
        elif source == "upload a CSV":
            upload = st.file_uploader("CSV or JSONL with columns prompt and answer",
                                      type=["csv", "jsonl"])  # fmt: skip
            if upload is not None:
                try:
                    saved, pairs = training_upload(store(), upload.name, upload.getvalue())
                except UserError as exc:
                    show_user_error(exc)
                else:
                    path = str(saved.path)
                    st.caption(f"{len(pairs)} prompt/answer pairs in {md_text(saved.name)}; "
                               "the first ones:")  # fmt: skip
                    st.dataframe(pd.DataFrame(saved.preview), hide_index=True)  # cells as text
    with right:
        model_path = st.text_input(
            "Model", placeholder="empty: the aligned demo; or a local model dir or .gguf",
            help="The model the finetune would start from.",
        ).strip()  # fmt: skip
    with right, st.expander("Random band and judge"):
        directions = int(st.number_input("Random directions", 2, 100, DEFAULTS.directions))
        seed = int(st.number_input("First seed", 0, 2**31 - 1, DEFAULTS.seed))
        limit = int(st.number_input("Held-out AdvBench prompts", 1, 100,
                                    DEFAULTS.prompts.limit or 20))  # fmt: skip
        threshold = float(st.slider("The basin ends at ASR (%)", 5, 100,
                                    int(DEFAULTS.basin.threshold)))  # fmt: skip

    try:
        recipe = "file" if source == "upload a CSV" else source
        if recipe == "file" and not path:
            raise UserError("upload a CSV or JSONL with columns prompt and answer")
        data = TrainingDataSpec(recipe=recipe, shots=shots, path=path)
        settings = dataclasses.replace(
            DEFAULTS, model=model_spec(model_path),
            prompts=PromptSetSpec(source="advbench", limit=limit),
            basin=BasinSpec(DEFAULTS.basin.tolerance, DEFAULTS.basin.max_alpha, threshold),
            gradient_basin=BasinSpec(DEFAULTS.gradient_basin.tolerance,
                                     DEFAULTS.gradient_basin.max_alpha, threshold),
            directions=directions, seed=seed,
        )  # fmt: skip
        sweeps = risk_sweeps(data, settings)
        ids = [plan(s, store().file_digest).run_id for s in (sweeps.gradient, sweeps.random)]
    except UserError as exc:
        show_user_error(exc)
        st.stop()

    try:
        out = report(store(), *ids)
    except Unfinished:
        out = None
    if out is None:
        jobs = store().jobs.frame()
        waiting = set(jobs.run_id[jobs.status.isin(ACTIVE)])
        if set(ids) & waiting:
            st.info("The preflight is queued or running; follow it on the Jobs page. This "
                    "page shows the report when both searches are done.")  # fmt: skip
        if st.button("Run the preflight", type="primary"):
            for spec in (sweeps.gradient, sweeps.random):
                submit(store(), spec)
            st.success("Queued the two searches (the random band is shared by every "
                       "dataset). Follow them on the Jobs page.")  # fmt: skip
    else:
        band = out.random_edges
        edge = "not reached" if out.gradient_edge is None else f"{out.gradient_edge:.3g}"
        cols = st.columns(3)
        cols[0].metric("Edge along the data's direction (alpha)", edge)
        spread = (f"5th-95th percentile {band.p5:.3f}-{band.p95:.3f} over {len(band.edges)} "
                  f"edges ({band.n_directions} directions, both sides)")  # fmt: skip
        cols[1].metric("Median random edge", f"{band.p50:.3f}", help=spread)
        ratio = "-" if out.verdict.narrower_by is None else f"{out.verdict.narrower_by:.3g}x"
        cols[2].metric("Narrower than a typical direction", ratio)
        LEVELS[out.verdict.level](md_text(out.verdict.text))
        points = [store().points_frame(run_id) for run_id in ids]
        st.plotly_chart(figures.risk_curves(*points, out.to_dict()), key="risk-curves")
        st.caption(md_text(
            f"ASR >= {out.threshold:g}% ends the basin; the data's direction is searched to "
            f"{out.gradient_tolerance:g}, random ones to {out.tolerance:g}. Runs: gradient "
            f"{out.runs['gradient']}, random band {out.runs['random']}."
        ))  # fmt: skip
        probes = out.runs["gradient"]  # a hex id: safe in a link
        st.markdown(f"[Open the data's search on the Landscape page](/landscape?run={probes})")

with tab_paths:
    paths = store().trajectories.frame()
    if paths.empty:
        st.info(
            "No finetune trajectories yet. Train with checkpoints, then project them "
            "(each checkpoint is also evaluated on held-out AdvBench):\n\n"
            "`python -m landscape_core finetune harmful --shots 10`\n\n"
            "`python -m landscape_core trajectory cache/models/<adapter> --plane-config "
            "plane.yaml` and `python -m landscape_core sweep plane.yaml` for its landscape"
        )
    for row in paths.itertuples():
        st.subheader(md_text(f"finetune {Path(row.adapter).name}"))
        checkpoint_table(row.points, key=f"path-{row.plane_key}-{Path(row.adapter).name}")
        planes = _plane_runs().get(row.plane_key, [])
        if planes:  # hex run ids: safe in links
            links = ", ".join(f"[{r}](/landscape?run={r})" for r in planes)
            st.markdown(f"The path over its plane's landscape: {links}")
        else:
            st.caption("No 2D run of its plane yet: `trajectory ADAPTER --plane-config "
                       "plane.yaml`, then `sweep plane.yaml`, draws the path on one.")  # fmt: skip
