"""People's labels on answers: the store, the disagreement queue, judge-eval, the page."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import cli, sweep
from landscape_core.errors import UserError
from landscape_core.readers.labelling import label_queue
from landscape_core.readers.results import run_visage
from landscape_core.rescore import rescore
from landscape_core.spec.config import JudgeSpec
from landscape_core.submit import submit

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


# Run management and side-by-side answers ---------------------------------------------


def test_rename_tag_and_delete_keep_what_other_runs_share(store, tiny_spec):
    small = sweep.run(tiny_spec(label="small", grid=[{"num": 3}]), store).run_id
    wide = sweep.run(tiny_spec(label="wide", grid=[{"num": 5}]), store).run_id  # shares 3
    store.set_labels(wide, ["wide v2", "baseline", "wide v2", " "])
    assert store.run(wide)["labels"] == ["wide v2", "baseline"]
    assert store.run(wide)["label"] == "wide v2"
    with pytest.raises(UserError, match="needs a label"):
        store.set_labels(wide, [" "])
    key = store.generations_frame(wide).point_key.iloc[0]
    store.answer_labels.save(key, 0, "ana", "refused")
    gone = store.delete_run(wide)
    assert (gone.points, gone.labels) == (2, 0 if key in _keys(store, small) else 1)
    assert wide not in set(store.runs_frame().run_id)
    assert len(store.generations_frame(small)) == 3 * 3  # the shared points stayed whole
    assert store.points_frame(small).status.eq("done").all()
    with sqlite3.connect(store.path) as conn:
        orphans = conn.execute(
            "SELECT COUNT(*) FROM points WHERE point_key NOT IN (SELECT point_key FROM run_points)"
        ).fetchone()[0]
    assert orphans == 0


def _keys(store, run_id):
    return set(store.generations_frame(run_id).point_key)


def test_a_run_being_computed_cannot_be_deleted(store, tiny_spec):
    queued = submit(store, tiny_spec())
    sweep.run(tiny_spec(), store)
    with pytest.raises(UserError, match="cancel it on the Jobs page first"):
        store.delete_run(queued.run_id)
    store.jobs.cancel(queued.job_id)
    assert store.delete_run(queued.run_id).points == 3


def test_the_runs_page_searches_renames_and_deletes(store, tiny_spec, monkeypatch):
    keep = sweep.run(tiny_spec(label="keep me"), store).run_id
    drop = sweep.run(tiny_spec(label="drop me", system_prompt={"preset": "empty"}), store).run_id
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "runs_page.py"), default_timeout=60).run()
    assert not at.exception
    at = at.text_input[0].input("drop").run()
    table = at.dataframe[0].value
    assert table["run id"].tolist() == [drop] and table.points.tolist() == ["3/3"]
    at = at.text_input(key=f"labels-{drop}").input("dropped, old").run()
    at = next(b for b in at.button if b.label == "Save labels").click().run()
    assert store.run(drop)["labels"] == ["dropped", "old"]
    assert next(b for b in at.button if b.label == "Delete run").disabled
    at = at.checkbox(key="confirm-delete").check().run()
    at = next(b for b in at.button if b.label == "Delete run").click().run()
    assert not at.exception
    assert any(f"Deleted run {drop}" in s.value for s in at.success)
    assert set(store.runs_frame().run_id) == {keep}


def test_compare_shows_one_prompt_at_one_point_in_each_run(store, tiny_spec, monkeypatch):
    runs = [
        sweep.run(tiny_spec(label=p, system_prompt={"preset": p}), store).run_id
        for p in ("default", "empty")
    ]
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "compare_page.py"), default_timeout=60).run()
    assert not at.exception
    prompt = at.selectbox(key="side-prompt").value
    alpha, beta = at.selectbox(key="side-point").value
    assert (alpha, beta) == (0.0, 0.0)  # the model itself first
    expected = []
    for run_id in runs:
        gens = store.generations_frame(run_id)
        hit = gens[(gens.prompt == prompt) & (gens.alpha == 0.0)]
        expected.append(hit.text.iloc[0])
    shown = [c.value for c in at.code]
    assert all(any(text in s for s in shown) for text in expected)


def _orphans(store) -> int:
    with sqlite3.connect(store.path) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM points WHERE point_key NOT IN (SELECT point_key FROM run_points)"
        ).fetchone()[0]


def test_a_run_a_cli_sweep_computes_cannot_be_deleted(store, tiny_spec):
    """No job names a CLI sweep's run: the sweep's lease on it must refuse the delete."""
    refused = []

    def delete_meanwhile(progress: sweep.Progress) -> None:
        if progress.done == 1 and not refused:  # one point stored, more to come
            with pytest.raises(UserError, match="a sweep .* is computing") as exc:
                store.delete_run(progress.run_id)  # was: deleted, and the sweep went on
            refused.append(str(exc.value))

    summary = sweep.run(tiny_spec(grid=[{"num": 3}]), store, on_progress=delete_meanwhile)
    assert refused and summary.status == "complete"
    assert store.points_frame(summary.run_id).status.eq("done").all()
    assert store.delete_run(summary.run_id).points == 3  # its sweep has ended: allowed
    assert _orphans(store) == 0


def test_a_sweep_whose_run_was_deleted_says_so_and_saves_nothing_more(store, tiny_spec):
    """A delete that could not see the sweep (another tool, an older version)."""
    spec = tiny_spec(grid=[{"num": 3}])

    def delete_behind_its_back(progress: sweep.Progress) -> None:
        if progress.done == 1:
            with sqlite3.connect(store.path) as conn:
                for table in ("points", "generations", "scores", "measures"):
                    conn.execute(f"DELETE FROM {table}")
                for table in ("run_points", "run_labels", "runs"):
                    conn.execute(f"DELETE FROM {table}")

    with pytest.raises(UserError, match="was deleted while this sweep"):
        sweep.run(spec, store, on_progress=delete_behind_its_back)  # was: "complete"
    assert store.runs_frame().empty
    assert _orphans(store) == 0  # was: 2 points no run holds
