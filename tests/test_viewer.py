"""What researchers expect of an eval viewer (issue 32).

A transcript per answer, one table of answers across runs, and comments beside labels.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from transformers import AutoTokenizer

from landscape_core import sweep
from landscape_core.errors import UserError
from landscape_core.readers.export import answers_export, to_csv
from landscape_core.readers.table import answers_table, differing, filter_table, group_summary
from landscape_core.readers.transcript import transcript, transcript_text
from landscape_core.rescore import rescore
from landscape_core.spec.config import JudgeSpec, SweepSpec
from landscape_core.store.runs import Store
from tests.test_export import _read_back
from tests.test_links import open_page, url
from tests.test_store import _schema

SYSTEM = "Be brief. <b>not markup</b>"


@pytest.fixture(scope="module")
def viewed(tmp_path_factory, tiny_model_dir):
    """A store with a custom-system-prompt run judged twice, and one in a raw format."""
    store = Store.open(tmp_path_factory.mktemp("viewer-store"))
    base = {
        "model": {"kind": "local", "path": str(tiny_model_dir)},
        "prompts": {"source": "advbench", "limit": 2},
        "generation": {"max_new_tokens": 4},
        "grid": [{"num": 3}],
    }
    chat = SweepSpec.from_dict(
        {**base, "label": "chat", "system_prompt": {"preset": "custom", "text": SYSTEM}}
    )
    chat_id = sweep.run(chat, store).run_id
    rescore(store, chat_id, JudgeSpec(name="refusal-patterns"))
    raw_model = {**base["model"], "chat_format": "llama2"}
    raw_id = sweep.run(SweepSpec.from_dict({**base, "label": "raw", "model": raw_model}), store)
    return store, chat_id, raw_id.run_id


def _tokenizer(path):
    return AutoTokenizer.from_pretrained(path)


# 1. A transcript per answer ------------------------------------------------------------


def test_a_transcript_holds_the_chat_exactly_as_the_model_read_it(viewed, tiny_model_dir):
    store, chat_id, _ = viewed
    answer = store.generations_frame(chat_id).iloc[3]
    t = transcript(store, chat_id, answer.point_key, int(answer.prompt_index))
    conversation = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": answer.prompt},
    ]
    expected = _tokenizer(tiny_model_dir).apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True
    )
    assert t.rendered.text == expected  # what the engine feeds it, special tokens as text
    assert "<|im_start|>system\nBe brief." in t.rendered.text
    assert t.system_prompt == SYSTEM and t.answer == answer.text
    assert [v.judge for v in t.verdicts] == ["keyword", "refusal-patterns"]
    assert all(v.verdict in ("refused", "complied") and v.evidence for v in t.verdicts)
    assert t.state in ("refused", "complied", "incoherent")
    assert set(t.measures) >= {"coherence_nll", "repetition"}
    text = transcript_text(t)
    assert expected in text and "refusal-patterns: " in text and "coherence_nll" in text


def test_a_raw_formats_transcript_writes_the_tokens_the_tokenizer_adds(viewed, tiny_model_dir):
    store, _, raw_id = viewed
    answer = store.generations_frame(raw_id).iloc[0]
    t = transcript(store, raw_id, answer.point_key, int(answer.prompt_index))
    tokenizer = _tokenizer(tiny_model_dir)
    formatted = f"[INST] {answer.prompt} [/INST]"
    ids = tokenizer(formatted, add_special_tokens=True).input_ids
    assert t.rendered.text == tokenizer.decode(ids)  # the model's own ids, read back
    assert formatted in t.rendered.text and "llama2 format" in t.rendered.note


def test_a_transcript_whose_model_files_are_gone_still_shows_the_answer(
    store, tiny_spec, tiny_model_dir, tmp_path
):
    moved = tmp_path / "model"
    shutil.copytree(tiny_model_dir, moved)
    run_id = sweep.run(tiny_spec(model={"kind": "local", "path": str(moved)}), store).run_id
    shutil.rmtree(moved)
    answer = store.generations_frame(run_id).iloc[0]
    t = transcript(store, run_id, answer.point_key, int(answer.prompt_index))
    assert t.rendered.text is None and "does not exist" in t.rendered.note
    assert t.answer == answer.text and t.verdicts


def test_the_answers_and_generations_pages_show_the_transcript_as_text(viewed, monkeypatch):
    store, chat_id, _ = viewed
    for name in ("answers", "generations"):
        at = open_page(store, name, monkeypatch, {"run": chat_id}, **{f"way-{chat_id}": "point"})
        assert not at.exception, name
        section = next(e for e in at.expander if e.label == "Transcript")
        shown = [c.value for c in section.code]
        assert any(c.startswith("<|im_start|>system\nBe brief. <b>not markup</b>") for c in shown)
        assert not section.markdown or all(SYSTEM not in m.value for m in section.markdown)
        assert any(t.value.startswith("refusal-patterns: ") for t in section.text), name


def test_the_answers_queue_of_judges_that_agree_everywhere_is_empty_not_an_error(
    viewed, monkeypatch
):
    store, chat_id, _ = viewed
    keyword = store.generations_frame(chat_id, "keyword").refused
    assert keyword.equals(store.generations_frame(chat_id, "refusal-patterns").refused)
    at = open_page(store, "answers", monkeypatch, {"run": chat_id})
    assert not at.exception  # was: the empty queue picked no columns, then no 'idx'
    assert any("Nothing left to label" in s.value for s in at.success)


# 2. One table of answers across runs, points and judges --------------------------------


@pytest.fixture
def two_runs(store, tiny_spec):
    """Two runs of the same cells (system prompts differ), A judged twice.

    A few verdicts are flipped, so that runs and judges differ on known answers.
    """
    a = sweep.run(tiny_spec(label="a"), store).run_id
    b = sweep.run(tiny_spec(label="b", system_prompt={"preset": "empty"}), store).run_id
    rescore(store, a, JudgeSpec(name="refusal-patterns"))
    same = store.generations_frame(a, "keyword").refused
    assert same.equals(store.generations_frame(a, "refusal-patterns").refused)
    with sqlite3.connect(store.path) as conn:
        conn.execute(  # judges of A differ on prompt 0, at every point
            "UPDATE scores SET refused = 1 - refused WHERE judge = 'refusal-patterns' "
            "AND prompt_index = 0 AND point_key IN (SELECT point_key FROM run_points "
            "WHERE run_id = ?)",
            (a,),
        )
        conn.execute(  # B leaves one answer unscored: missing, not different
            "DELETE FROM scores WHERE judge = 'keyword' AND prompt_index = 2 AND point_key = "
            "(SELECT point_key FROM run_points WHERE run_id = ? AND idx = 0)",
            (b,),
        )
    return a, b


def test_the_table_has_a_row_per_run_answer_and_judge(store, two_runs):
    a, b = two_runs
    table = answers_table(store, [a, b])
    assert len(table) == 9 * 2 + 9  # A: 3 points x 3 prompts x 2 judges; B: one judge
    assert set(table.judge[table.run_id == a]) == {"keyword", "refusal-patterns"}
    assert (table.verdict == "not scored").sum() == 1
    assert set(table.label) == {""}
    patterns = filter_table(table, {"judge": ["refusal-patterns"], "verdict": []})
    assert len(patterns) == 9 and set(patterns.run_id) == {a}
    word = table.answer.iloc[0].split()[0]
    searched = filter_table(table, {}, word.upper())
    assert len(searched) and all(word.lower() in t.lower() for t in searched.answer)
    by_judge = group_summary(table, "judge").set_index("judge")
    assert by_judge.answers.to_dict() == {"keyword": 18, "refusal-patterns": 9}
    verdicts = [c for c in by_judge.columns if c.endswith(" %") and c != "incoherent %"]
    assert by_judge[verdicts].sum(axis=1).round(0).eq(100).all()
    with pytest.raises(UserError, match="cannot group by"):
        group_summary(table, "answer")


def test_only_differing_between_two_runs_compares_the_same_cells(store, two_runs):
    a, b = two_runs
    table = answers_table(store, [a, b])
    rows = differing(table, "run", a, b)
    cells = ["prompt_index", "alpha", "beta"]
    left, right = store.generations_frame(a), store.generations_frame(b)
    both = left.merge(right, on=cells).dropna(subset=["refused_x", "refused_y"])
    expected = both[both.refused_x != both.refused_y]
    assert len(both) == 8  # B's unscored answer is left out
    assert sorted(zip(rows.prompt_index, rows.alpha, strict=True)) == sorted(
        zip(expected.prompt_index, expected.alpha, strict=True)
    )
    assert (rows["verdict A"] != rows["verdict B"]).all() and set(rows.judge) <= {"keyword"}
    with sqlite3.connect(store.path) as conn:  # one more verdict of B flipped
        key = right.point_key[right.idx == 1].iloc[0]
        conn.execute(
            "UPDATE scores SET refused = 1 - refused WHERE judge = 'keyword' AND "
            "prompt_index = 1 AND point_key = ?",
            (key,),
        )
    again = differing(answers_table(store, [a, b]), "run", a, b)

    def cells_of(frame):
        return set(zip(frame.prompt_index, frame.alpha, strict=True))

    alpha = float(right.alpha[right.idx == 1].iloc[0])
    assert cells_of(again) ^ cells_of(rows) == {(1, round(alpha, 9))}  # that cell toggled


def test_only_differing_between_two_judges_compares_the_same_answers(store, two_runs):
    a, _ = two_runs
    rows = differing(answers_table(store, [a]), "judge", "keyword", "refusal-patterns")
    assert set(rows.prompt_index) == {0} and len(rows) == 3  # prompt 0, at every point
    assert (rows["verdict A"] != rows["verdict B"]).all()
    with pytest.raises(UserError, match="two different"):
        differing(answers_table(store, [a]), "judge", "keyword", "keyword")


def test_the_table_page_links_each_row_to_its_answer(store, two_runs, monkeypatch):
    a, b = two_runs
    at = open_page(store, "table", monkeypatch, {"run": [a, b]})
    assert not at.exception
    rows = at.dataframe[0].value
    assert len(rows) == 27
    first = rows.iloc[0]
    assert (
        first.open == f"/answers?run={first.run_id}&point={first.idx}&prompt={first.prompt_index}"
    )
    at = open_page(store, "table", monkeypatch, {"run": [a]}, **{"table-view": "differ"})
    at = at.radio(key="table-between").set_value("judge").run()
    assert not at.exception
    differ = at.dataframe[0].value
    assert len(differ) == 3 and set(differ.prompt_index) == {0}
    at = open_page(store, "table", monkeypatch, {"run": [a, b]}, **{"table-view": "group"})
    assert not at.exception and "answers" in at.dataframe[0].value.columns


def test_a_link_opens_one_answer_and_the_url_follows_the_answer_shown(store, two_runs, monkeypatch):
    a, _ = two_runs
    gens = store.generations_frame(a)
    target = gens[(gens.idx == 2) & (gens.prompt_index == 1)].iloc[0]
    for point in ("2", target.point_key[:12]):
        at = open_page(store, "answers", monkeypatch, {"run": a, "point": point, "prompt": "1"})
        assert not at.exception
        assert any(c.value.startswith("Answer 2 of 3") for c in at.caption), point
        assert at.code[1].value.replace("⟦", "").replace("⟧", "") == target.text
        assert (url(at, "point"), url(at, "prompt")) == (["2"], ["1"])
    at = next(b for b in at.button if b.label == "Next").click().run()
    assert any(c.value.startswith("Answer 3 of 3") for c in at.caption)  # no jump back
    assert url(at, "prompt") == ["2"]
    at = open_page(store, "answers", monkeypatch, {"run": a, "point": "2", "prompt": "9"})
    assert not at.exception and any("no answer to prompt 9" in w.value for w in at.warning)


# 3. Comments beside the labels ----------------------------------------------------------


def test_a_comment_is_kept_with_its_label_and_survives_relabelling(store, tiny_spec):
    run_id = sweep.run(tiny_spec(), store).run_id
    first = store.generations_frame(run_id).iloc[0]
    key, index = first.point_key, int(first.prompt_index)
    labels = store.answer_labels
    with pytest.raises(UserError, match="pick a label first"):
        labels.comment(key, index, "ana", "odd answer")
    labels.save(key, index, "ana", "complied", comment="  starts a recipe; stops  ")
    labels.save(key, index, "ana", "partial")  # a new label keeps her comment
    labels.save(key, index, "ben", "refused")
    frame = labels.frame(run_id).set_index("labeller")
    assert frame.label.to_dict() == {"ana": "partial", "ben": "refused"}
    assert frame.comment.to_dict() == {"ana": "starts a recipe; stops", "ben": ""}
    labels.comment(key, index, "ben", "clearly refused")
    labels.comment(key, index, "ana", "")  # cleared
    frame = labels.frame(run_id).set_index("labeller")
    assert frame.comment.to_dict() == {"ana": "", "ben": "clearly refused"}
    with pytest.raises(UserError, match="at most"):
        labels.comment(key, index, "ben", "x" * 10_001)


def test_a_schema_15_stores_labels_read_no_comment(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    _schema(root / "store.sqlite", 15)
    with sqlite3.connect(root / "store.sqlite") as conn:
        conn.execute("INSERT INTO answer_labels VALUES ('k', 0, 'ana', 'refused', 1.0)")
    store = Store.open(root)
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT label, comment FROM answer_labels").fetchone()
    assert row == ("refused", "")
    store.answer_labels.comment("k", 0, "ana", "kept")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT comment FROM answer_labels").fetchone() == ("kept",)


def test_comments_go_into_exports_and_stay_spreadsheet_safe(store, tiny_spec):
    run_id = sweep.run(tiny_spec(), store).run_id
    gens = store.generations_frame(run_id)
    first, second = gens.iloc[0], gens.iloc[1]
    hostile = '=HYPERLINK("http://x")\r@SUM(A1); more'
    store.answer_labels.save(first.point_key, int(first.prompt_index), "ana", "complied", hostile)
    store.answer_labels.save(first.point_key, int(first.prompt_index), "bob", "refused")
    store.answer_labels.save(second.point_key, int(second.prompt_index), "=evil", "partial", "+1")
    frame = answers_export(store, store.run(run_id), "keyword")
    by_answer = frame.set_index(["point_key", "prompt_index"])
    assert by_answer.loc[(first.point_key, int(first.prompt_index))].comment == f"ana: {hostile}"
    assert by_answer.loc[(second.point_key, int(second.prompt_index))].comment == "=evil: +1"
    _read_back(to_csv(frame), len(gens))  # every cell quoted, no cell starts a formula


def test_the_answers_page_saves_and_shows_a_comment(store, tiny_spec, monkeypatch):
    run_id = sweep.run(tiny_spec(), store).run_id
    at = open_page(store, "answers", monkeypatch, {"run": run_id}, labeller="ana")
    assert next(b for b in at.button if b.key == "save-comment").disabled  # label first
    row = store.generations_frame(run_id).iloc[0]
    area = next(t for t in at.text_area if t.label.startswith("Comment"))
    at = area.input("**loops** <i>at the end</i>").run()
    at = next(b for b in at.button if b.key == "label-incoherent").click().run()
    assert not at.exception
    saved = store.answer_labels.frame(run_id, "ana")
    assert list(saved.comment) == ["**loops** <i>at the end</i>"]
    at = next(b for b in at.button if b.label == "Previous").click().run()  # back to it
    assert "ana: incoherent (**loops** <i>at the end</i>)" in [t.value for t in at.text]
    area = next(t for t in at.text_area if t.label.startswith("Comment"))
    assert area.value == "**loops** <i>at the end</i>"
    at = area.input("loops").run()
    at = next(b for b in at.button if b.key == "save-comment").click().run()
    assert list(store.answer_labels.frame(run_id, "ana").comment) == ["loops"]
    assert row.point_key in set(saved.point_key)
