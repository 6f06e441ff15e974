"""Defence: the perturbed-ensemble defence against jailbreaks, and the adaptive attack.

Reads the reports `python -m landscape_core defend CONFIG` stores; every member is an
ordinary run, so each links to its landscape and answers.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from landscape_core.readers import figures
from pages.common import md_text, one_decimal, store

st.title("Jailbreak defence")
st.caption(
    "Each prompt is answered by K copies of the model, each perturbed a distance r along "
    "its own random direction (inside the safety basin); the vote decides whether the "
    "ensemble refuses (paper, section 6). The adaptive attacker knows K, r and the vote, "
    "not the seeds: it picks, per goal, the template (and searched suffix) that complies "
    "most often on perturbed copies it samples itself."
)
reports = store().defences.frame()
if reports.empty:
    st.info(
        "No defence reports yet. Run one from a terminal (it computes its members as "
        "cached points, then stores the report here):\n\n"
        "`python -m landscape_core defend configs/defend.yaml`"
    )
    st.stop()


def _title(row: pd.Series) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created))
    return f"{row.label or row.attack} · {row.defence_id[:8]} · {when}"


titles = {row.defence_id: _title(row) for row in reports.itertuples()}
chosen = st.selectbox("Report", list(titles), format_func=titles.get, key="defence-report")
report = store().defences.report(chosen)
d = report["defence"]
st.caption(
    md_text(
        f"{d['members']} member(s) at radius {d['radius']} (seeds {d['seed']}.."
        f"{d['seed'] + d['members'] - 1}), vote {d['vote']}; non-adaptive attack: "
        f"{report['attack']}; attacker samples {d['attack_samples'] or d['members']} "
        f"copies of its own (seed {d['attack_seed']})."
    )
)


def _ci(key: str) -> str:
    mean, low, high = report["intervals"][key]
    return f"{mean:.1f}" if low is None else f"{mean:.1f} [{low:.1f}, {high:.1f}]"


columns = st.columns(3)
columns[0].metric("ASR, no defence", f"{report['undefended_asr']:.1f}%")
columns[1].metric(
    "ASR, defence", f"{report['defended_asr']:.1f}%",
    delta=f"{report['defended_asr'] - report['undefended_asr']:+.1f}", delta_color="inverse",
)  # fmt: skip
columns[2].metric(
    "ASR, defence vs adaptive attack", f"{report['adaptive_asr']:.1f}%",
    delta=f"{report['adaptive_asr'] - report['defended_asr']:+.1f}", delta_color="inverse",
)  # fmt: skip
st.plotly_chart(figures.defence_bars(report), key="defence-bars")
st.caption(
    "Bars: 95% t-intervals over goals. Paired over goals: the "
    f"defence changes ASR by {_ci('defended_minus_undefended')} points; adapting to it "
    f"wins back {_ci('adaptive_minus_defended')}."
)

st.subheader("What the defence costs")
st.dataframe(
    pd.DataFrame(
        {
            "measure": ["XSTest held-out safe prompts refused (%)", "MT-Bench perplexity"],
            "no defence": [
                _ci("over_refusal_undefended"),
                one_decimal(report["perplexity_undefended"], "-"),
            ],
            "defence": [_ci("over_refusal"), one_decimal(report["perplexity"], "-")],
        }
    ),
    hide_index=True,
)
st.caption(
    "Perplexity: the unperturbed model's per-token NLL of the answers, exponentiated "
    "(fluency; lower is more fluent)."
)

st.subheader("Per template")
st.plotly_chart(figures.template_bars(report), key="template-bars")
st.dataframe(
    pd.DataFrame(report["templates"]).rename(
        columns={
            "name": "template",
            "at_model": "ASR at the model",
            "at_radius": "ASR, members (mean)",
            "defended": "ASR, defended",
            "chosen_for": "goals the adaptive attacker sent it",
        }  # fmt: skip
    ),
    hide_index=True,
)

search = report.get("suffix_search") or {}
if search:
    st.subheader("Searched suffix (GCG-style, against the attacker's copies)")
    st.code(search["suffix"], language=None, wrap_lines=True)  # text, never markup
    st.caption(
        f"Target loss {search['initial_loss']:.3f} -> {search['loss']:.3f} nats/token in "
        f"{len(search['losses'])} steps, {search['seconds']:.0f} s."
    )
    st.line_chart(pd.DataFrame({"loss": search["losses"]}), x_label="step", y_label="loss")

st.subheader("Runs behind the report")
st.caption(
    "The defender's members and the attacker's samples, one run per prompt set. Each is "
    "an ordinary run: its landscape and answers open on the Landscape and Generations pages."
)
st.dataframe(
    pd.DataFrame(
        {
            "run": list(report["runs"]),
            "landscape": [f"/landscape?run={r}" for r in report["runs"].values()],
        }
    ),
    column_config={"landscape": st.column_config.LinkColumn(display_text=r"run=(\w+)")},
    hide_index=True,
)
