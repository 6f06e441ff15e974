"""Answers: read one answer in full, see every judge's verdict, and label it.

Three ways through a run's answers: where its judges disagree (largest possible
VISAGE change first), one point's answers, or one prompt across the grid. Labels go
to the store under the labeller's name, beside the judges' verdicts, never over them;
`judge-eval --from-store` scores a judge against them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.readers.labelling import label_queue, linked_answer, verdicts
from landscape_core.readers.results import answer_states
from landscape_core.readers.transcript import verdict_label
from landscape_core.store.labels import HUMAN_LABELS
from pages.common import (
    mark_match,
    md_text,
    pick_runs,
    show_user_error,
    store,
    transcript_section,
)

SHORTCUTS = dict(zip(HUMAN_LABELS, "1234", strict=True))  # refused 1 ... incoherent 4
WAYS = {
    "queue": "Where the judges disagree",
    "point": "One point's answers",
    "prompt": "One prompt across the grid",
}

st.title("Answers")
runs = pick_runs("Run", key="answers-run")
if not runs:
    st.stop()
run = runs[0]
run_id = run["run_id"]
labeller = st.text_input(
    "Your name (labeller)", key="labeller", help="Labels are kept per labeller."
).strip()
judges = store().judges(run_id)
answers = verdicts(store(), run_id)


def _open_link() -> None:
    """A link to one answer (``?point=&prompt=``) opens it among its point's answers.

    Once per link: the page writes the answer it shows back into the URL, and that must
    not pull a reader out of the queue at the next click.
    """
    asked = (run_id, st.query_params.get("point", ""), st.query_params.get("prompt", ""))
    if not (asked[1] and asked[2]) or st.session_state.get("answers_link") == asked:
        return
    st.session_state["answers_link"] = asked
    found = linked_answer(answers, asked[1], asked[2])
    if found is None:
        st.warning(
            f"This run has no answer to prompt {md_text(asked[2])} at point "
            f"{md_text(asked[1])}; the link may be from another run.",
            icon=":material/link_off:",
        )
        return
    st.session_state[f"way-{run_id}"] = "point"
    st.session_state["answers-point"] = found.idx
    st.session_state["answers_context"] = (
        run_id, "point", found.idx, st.session_state.get("answers-prompt"),
    )  # fmt: skip
    st.session_state["answer_position"] = found.position


_open_link()
# one judge has nothing to disagree with: such a run opens on its answers, point by point
st.session_state.setdefault(f"way-{run_id}", "queue" if len(judges) > 1 else "point")
way = st.segmented_control(
    "Read", list(WAYS), format_func=WAYS.get, required=True, key=f"way-{run_id}"
)
# what the last label click did, shown before anything below can stop the page (the
# queue may be empty once its last answer is labelled)
if error := st.session_state.pop("label_error", None):
    show_user_error(UserError(error))
if last := st.session_state.pop("last_label", None):
    st.caption(f"Saved: {md_text(last)}")
if answers.empty:
    st.info("This run has no scored answers yet.")
    st.stop()

if way == "queue" and len(judges) < 2:
    st.info(
        "Only one judge scored this run, so there is nothing to disagree on; here are "
        "its answers point by point. Add a judge with "
        f"`python -m landscape_core rescore {run_id} --judge refusal-patterns`."
    )
    way = "point"
if way == "queue":
    rows = label_queue(store(), run_id, labeller, answers)
    st.caption(
        f"{len(rows)} answer(s) the judges disagree on that {md_text(labeller or 'you')} "
        "have not labelled, the largest possible VISAGE change first."
    )
elif way == "point":
    points = answers.drop_duplicates("idx")
    names = {int(r.idx): f"alpha={r.alpha:+.3f} beta={r.beta:+.3f}" for r in points.itertuples()}
    idx = st.selectbox("Point", list(names), format_func=names.get, key="answers-point")
    rows = answers[answers.idx == idx].reset_index(drop=True)
else:
    prompts = answers.drop_duplicates("prompt_index").set_index("prompt_index").prompt
    index = st.selectbox(
        "Prompt", list(prompts.index), format_func=lambda i: f"{i}: {prompts[i][:90]}",
        key="answers-prompt",
    )  # fmt: skip
    rows = answers[answers.prompt_index == index]
    rows = rows.assign(radius=np.hypot(rows.alpha, rows.beta)).sort_values("radius")
    rows = rows.reset_index(drop=True)

if rows.empty:
    st.success("Nothing left to label here.")
    st.stop()
context = (
    run_id,
    way,
    st.session_state.get("answers-point"),
    st.session_state.get("answers-prompt"),
)
if st.session_state.get("answers_context") != context:  # another list: start at its top
    st.session_state["answers_context"] = context
    st.session_state["answer_position"] = 0
position = min(st.session_state.get("answer_position", 0), len(rows) - 1)
row = rows.iloc[position]
answer = answers[(answers.point_key == row.point_key) & (answers.prompt_index == row.prompt_index)]


def _move(step: int) -> None:
    st.session_state["answer_position"] = (position + step) % len(rows)


back, where, forward = st.columns([1, 4, 1])
back.button("Previous", on_click=_move, args=(-1,), shortcut="p", width="stretch")
forward.button("Next", on_click=_move, args=(1,), shortcut="n", width="stretch")
where.caption(
    f"Answer {position + 1} of {len(rows)} · alpha={row.alpha:+.3f} beta={row.beta:+.3f} · "
    f"prompt {row.prompt_index}"
    + (
        f" · a label could move VISAGE by up to {row.impact:.2f}"
        if "impact" in row and not pd.isna(row.impact)
        else ""
    )
)
# the URL names the answer shown: a reload or a shared link opens it (see _open_link)
shown_link = (run_id, str(int(row.idx)), str(int(row.prompt_index)))
st.query_params["point"], st.query_params["prompt"] = shown_link[1:]
st.session_state["answers_link"] = shown_link

scores = store().answer_scores(row.point_key, int(row.prompt_index))
paper = scores.iloc[0] if not scores.empty else None
st.caption("Prompt")
st.code(row.prompt, language=None, wrap_lines=True)  # literal text, never markdown
st.caption("Answer (the text that decided the first judge's verdict is marked ⟦like this⟧)")
shown = mark_match(row.text, paper.matched) if paper is not None else row.text
st.code(shown, language=None, wrap_lines=True)

state = answer_states(answer.assign(refused=answer[judges[0]])).iloc[0] if judges else None
c1, c2, c3 = st.columns(3)
c1.metric("State", state or "not measured")
nll = answer.coherence_nll.iloc[0]
c2.metric("NLL / token (unperturbed model)", "-" if pd.isna(nll) else f"{nll:.2f}")
repetition = answer.repetition.iloc[0]
c3.metric("Repetition", "-" if pd.isna(repetition) else f"{repetition:.2f}")
st.dataframe(  # cells are text
    scores.assign(
        verdict=[verdict_label(r, e) for r, e in zip(scores.refused, scores.evidence, strict=True)]
    )[["judge", "verdict", "matched", "evidence"]],
    hide_index=True,
    width="stretch",
)

transcript_section(run_id, row.point_key, int(row.prompt_index))

given = store().answer_labels.frame(run_id)
given = given[(given.point_key == row.point_key) & (given.prompt_index == row.prompt_index)]
if not given.empty:
    st.caption("Labels so far")
    for r in given.itertuples():  # people's words: text, never markdown
        st.text(f"{r.labeller}: {r.label}" + (f" ({r.comment})" if r.comment else ""))
mine = given[given.labeller == labeller] if labeller else given.iloc[:0]
comment_key = f"comment-{row.point_key}-{int(row.prompt_index)}-{labeller}"
st.text_area(
    "Comment (kept with your label; a label button saves it too)",
    value=mine.comment.iloc[0] if not mine.empty else "",
    key=comment_key, height=80, disabled=not labeller,
)  # fmt: skip


def _label(label: str) -> None:
    try:
        store().answer_labels.save(
            row.point_key, int(row.prompt_index), labeller, label,
            comment=st.session_state.get(comment_key, ""),
        )  # fmt: skip
    except UserError as exc:
        st.session_state["label_error"] = str(exc)
        return
    st.session_state["last_label"] = f"{label} (answer {position + 1})"
    if way != "queue":  # the queue drops a labelled answer itself
        _move(1)


def _comment() -> None:
    try:
        store().answer_labels.comment(
            row.point_key, int(row.prompt_index), labeller, st.session_state.get(comment_key, "")
        )
    except UserError as exc:
        st.session_state["label_error"] = str(exc)
        return
    st.session_state["last_label"] = f"comment (answer {position + 1})"


st.button(
    "Save comment", key="save-comment", on_click=_comment, disabled=not labeller or mine.empty,
    help="Label the answer first: a comment is kept with its label.",
)  # fmt: skip
st.caption("Label it (keys 1-4; p and n step back and on)")
buttons = st.columns(len(HUMAN_LABELS))
for column, label in zip(buttons, HUMAN_LABELS, strict=True):
    column.button(
        label, key=f"label-{label}", on_click=_label, args=(label,), shortcut=SHORTCUTS[label],
        disabled=not labeller, width="stretch",
    )  # fmt: skip
if not labeller:
    st.caption("Give your name above to label.")
