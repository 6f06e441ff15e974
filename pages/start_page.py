"""Start: what the tool measures, the first run it offers, and the one button for it.

A first visit lands here. The run is ``spec.first_run``'s, the one the Launch form
starts from; its estimate is the Launch page's preflight on this machine's measured
pace, and the button queues it with the Launch page's ``submit``, then opens its view.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from landscape_core.errors import UserError
from landscape_core.plan.preflight import preflight
from landscape_core.spec.first_run import FIRST_RUN_FILE, describe, first_run
from landscape_core.submit import submit
from pages.common import md_text, runs_table, show_user_error, store, store_root

LATEST_RUNS = 5

st.title("Safety Landscape Explorer")
st.markdown(
    "This tool measures an aligned model's **safety basin** (Peng et al. 2024, "
    "*Navigating the Safety Landscape*): it perturbs the model's weights along random "
    "directions, asks the perturbed model harmful prompts, and judges whether each "
    "answer refuses. Near the original weights the model keeps refusing: that region "
    "is the basin, and its width (VISAGE) says how far the weights can move, by a "
    "finetune for instance, before the safety goes."
)

root = Path(store_root())
store()  # a store that cannot be opened stops the page with its message
st.subheader("Your first run")
try:
    spec = first_run(root)
    check = preflight(
        spec, root, measured=store().measured_pace(spec),
        to_compute=store().points_to_compute(spec),
    )  # fmt: skip
except UserError as exc:
    spec = check = None
    show_user_error(exc)
confirmed = True
if spec is not None and check is not None:
    parts = describe(spec, check.n_prompts)
    st.markdown("\n".join(f"- **{part}**: {md_text(text)}" for part, text in parts.items()))
    st.info(f"Estimate: {check.describe()}.", icon=":material/schedule:")
    st.caption(f"Basis of the estimate: {check.basis()}.")
    if check.needs_confirmation():  # past CONFIRM_HOURS, as Launch asks
        hours = (check.upper or 0) / 3600
        confirmed = st.checkbox(f"Yes, start a run of up to ~{hours:.1f} h")
if st.button("Start this run", type="primary", disabled=check is None or not confirmed):
    queued = submit(store(), spec)
    st.session_state["run_id"] = queued.run_id  # its view opens this run, not the last
    st.session_state["last_jobs"] = [queued.job_id]
    st.switch_page("pages/landscape_page.py", query_params={"run": queued.run_id})
st.markdown(":material/rocket_launch: [Or choose the model, prompts and grid on Launch](/launch)")
st.caption(
    f"The run runs in the background worker; its points are kept if you cancel it. "
    f"A data directory's `{FIRST_RUN_FILE}` (a sweep config) replaces this first run."
)

runs = runs_table(store_root())
if not runs.empty:
    st.subheader("Latest runs")
    latest = runs.head(LATEST_RUNS)
    st.markdown(  # links, not page links: a page run alone (the layer test) has no pages
        "\n".join(
            f"- [{md_text(row.title)}](/landscape?run={row.run_id}) "  # hex ids: safe in links
            f"({row.finished}/{row.n_points} points)"
            for row in latest.itertuples()
        )
    )
