"""People's labels on answers: the store, the disagreement queue, judge-eval, the page."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import cli, sweep
from landscape_core.errors import UserError
from landscape_core.judging.rescore import rescore
from landscape_core.readers.labelling import label_queue
from landscape_core.readers.results import run_visage
from landscape_core.spec.config import JudgeSpec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def two_judges(store, tiny_spec):
    """A 5-point run scored by two judges that disagree on some answers."""
    run_id = sweep.run(tiny_spec(grid=[{"num": 5}], prompts={"limit": 4}), store).run_id
    rescore(store, run_id, JudgeSpec(name="refusal-patterns"))
    with sqlite3.connect(store.path) as conn:  # make them disagree: flip a few verdicts
        conn.execute(
            "UPDATE scores SET refused = 1 - refused WHERE judge = 'refusal-patterns' "
            "AND prompt_index IN (0, 2)"
        )
    return run_id


def test_a_label_is_kept_per_labeller_and_never_touches_a_verdict(store, two_judges):
    gens = store.generations_frame(two_judges)
    first = gens.iloc[0]
    before = store.answer_scores(first.point_key, int(first.prompt_index))
    labels = store.answer_labels
    labels.save(first.point_key, int(first.prompt_index), "ana", "complied")
    labels.save(first.point_key, int(first.prompt_index), "ana", "partial")  # replaces hers
    labels.save(first.point_key, int(first.prompt_index), "ben", "refused")
    frame = labels.frame(two_judges)
    assert sorted(zip(frame.labeller, frame.label, strict=True)) == [
        ("ana", "partial"), ("ben", "refused"),
    ]  # fmt: skip
    assert set(frame.text) == {first.text} and set(frame.prompt) == {first.prompt}
    after = store.answer_scores(first.point_key, int(first.prompt_index))
    assert after.equals(before)
    with pytest.raises(UserError, match="unknown label"):
        labels.save(first.point_key, 0, "ana", "maybe")
    with pytest.raises(UserError, match="give your name"):
        labels.save(first.point_key, 0, " ", "refused")


def test_the_queue_holds_disagreements_largest_visage_change_first(store, two_judges):
    queue = label_queue(store, two_judges, "ana")
    both = store.generations_frame(two_judges).merge(
        store.generations_frame(two_judges, "refusal-patterns"),
        on=["point_key", "prompt_index"],
    )
    disagree = both[both.refused_x != both.refused_y]
    assert len(queue) == len(disagree) > 0
    points = store.points_frame(two_judges)
    base = run_visage(points)
    for row in queue.itertuples():  # each impact is the VISAGE change of one flipped verdict
        flipped = points.copy()
        at = flipped.idx == row.idx
        flipped.loc[at, "asr"] += (100.0 if row.keyword else -100.0) / 4
        assert row.impact == pytest.approx(abs(run_visage(flipped) - base))
    assert queue.impact.is_monotonic_decreasing
    top = queue.iloc[0]
    store.answer_labels.save(top.point_key, int(top.prompt_index), "ana", "refused")
    assert len(label_queue(store, two_judges, "ana")) == len(queue) - 1  # labelled: gone
    assert len(label_queue(store, two_judges, "ben")) == len(queue)  # not for others


def test_judge_eval_scores_a_judge_against_the_stores_labels(store, two_judges, capsys):
    root = ["--store", str(store.root)]
    assert cli.main(["judge-eval", "--from-store", *root]) == 2  # no labels yet
    assert "holds no labels" in capsys.readouterr().err
    gens = store.generations_frame(two_judges)
    for n, row in enumerate(gens.head(6).itertuples()):  # the judge's verdict, but twice not
        agree = bool(row.refused) != (n < 2)
        store.answer_labels.save(
            row.point_key, int(row.prompt_index), "ana", "refused" if agree else "complied"
        )
    store.answer_labels.save(gens.point_key[7], int(gens.prompt_index[7]), "ben", "refused")
    assert cli.main(["judge-eval", "--from-store", "--labeller", "ana", *root]) == 0
    out = capsys.readouterr().out
    assert "judge: keyword   rows: 6" in out and "accuracy 0.667" in out, out


def test_the_answers_page_labels_the_top_of_the_queue(store, two_judges, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "answers_page.py"), default_timeout=60)
    at.session_state["run_id"] = two_judges
    at.run()
    assert not at.exception
    top = label_queue(store, two_judges, "ana").iloc[0]
    assert all(b.disabled for b in at.button if b.key and b.key.startswith("label-"))
    at = at.text_input(key="labeller").input("ana").run()
    assert any(top.text in c.value for c in at.code)  # the answer, in full, as text
    verdicts = at.dataframe[0].value
    assert list(verdicts.judge) == ["keyword", "refusal-patterns"]
    at = next(b for b in at.button if b.key == "label-incoherent").click().run()
    assert not at.exception
    labels = store.answer_labels.frame(two_judges, "ana")
    assert list(zip(labels.point_key, labels.prompt_index, labels.label, strict=True)) == [
        (top.point_key, top.prompt_index, "incoherent")
    ]
