"""Exports a spreadsheet opens safely, with each answer's state and people's labels."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pandas as pd
import pytest

from landscape_core import cli, sweep
from landscape_core.readers.export import RUN_COLUMNS, answers_export, to_csv

FORMULA = ("=", "+", "-", "@")
HOSTILE = ("plain\r=1+1", "=cmd|' /C calc'!A0", "ok\r\n@SUM(A1)", "+1", "line\n-2+3")


def _unsafe(cell: str) -> bool:
    """A text cell a spreadsheet would read as a formula (numbers like -0.5 are fine)."""
    try:
        float(cell)
    except ValueError:
        return cell.startswith(FORMULA)
    return False


@pytest.fixture
def hostile_run(store, tiny_spec):
    """A run whose answers (and its label) hold carriage returns and formulas."""
    run_id = sweep.run(tiny_spec(label="=1+1\rlabel"), store).run_id
    with sqlite3.connect(store.path) as conn:
        rowids = [r[0] for r in conn.execute("SELECT rowid FROM generations ORDER BY rowid")]
        for rowid, text in zip(rowids, HOSTILE, strict=False):
            conn.execute("UPDATE generations SET text=? WHERE rowid=?", (text, rowid))
    return run_id


def _read_back(text: str, expected_rows: int) -> None:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == expected_rows + 1  # the header, then one row per answer
    assert len({len(r) for r in rows}) == 1
    assert not [c for r in rows[1:] for c in r if _unsafe(c)]
    # a spreadsheet splits rows at a bare \r or \n outside quotes: none may be left there
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert len(frame) == expected_rows
    assert not [c for c in frame.to_numpy().ravel() if _unsafe(c)]


def test_a_csv_export_with_carriage_returns_keeps_its_rows(store, hostile_run, tmp_path):
    out = tmp_path / "gens.csv"
    argv = ["export", hostile_run, "--store", str(store.root), "--out", str(out)]
    assert cli.main(argv) == 0
    n = len(store.generations_frame(hostile_run))
    text = out.read_bytes().decode("utf-8")
    _read_back(text, n)
    assert "'=1+1\rlabel" in pd.read_csv(io.StringIO(text)).run_label.tolist()


def test_the_apps_csv_keeps_its_rows_too(store, hostile_run):
    frame = answers_export(store, store.run(hostile_run), "keyword")
    _read_back(to_csv(frame), len(frame))


def test_every_text_cell_is_prefixed_whatever_its_column_type():
    frame = pd.DataFrame({"a": pd.Series(["=1+1", "x"], dtype="category"), "b": [-0.5, 1.0]})
    rows = list(csv.reader(io.StringIO(to_csv(frame), newline="")))
    assert rows[1] == ["'=1+1", "-0.5"] and rows[2] == ["x", "1.0"]


def test_exports_carry_state_and_human_labels(store, tiny_spec, tmp_path):
    run_id = sweep.run(tiny_spec(label="labelled"), store).run_id
    gens = store.generations_frame(run_id)
    first, second = gens.iloc[0], gens.iloc[1]
    store.answer_labels.save(first.point_key, int(first.prompt_index), "bob", "complied")
    store.answer_labels.save(first.point_key, int(first.prompt_index), "alice", "refused")
    store.answer_labels.save(second.point_key, int(second.prompt_index), "alice", "partial")
    frame = answers_export(store, store.run(run_id), "keyword")
    assert tuple(frame.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert "label" not in frame.columns and set(frame.run_label) == {"labelled"}
    assert set(frame.state.dropna()) <= {"refused", "complied", "incoherent"}
    assert frame.state.notna().all()
    assert len(frame) == len(gens)  # one row per answer, whoever labelled it
    by_answer = frame.set_index(["point_key", "prompt_index"])
    one = by_answer.loc[(first.point_key, int(first.prompt_index))]
    assert (one.human_label, one.labeller) == ("refused; complied", "alice; bob")
    two = by_answer.loc[(second.point_key, int(second.prompt_index))]
    assert (two.human_label, two.labeller) == ("partial", "alice")
    out = tmp_path / "gens.jsonl"
    argv = ["export", run_id, "--store", str(store.root), "--format", "jsonl", "--out", str(out)]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"run_label", "state", "human_label", "labeller"} <= set(rows[0])
    assert "partial" in {r["human_label"] for r in rows}
    report = tmp_path / "report.html"
    argv = ["export", run_id, "--store", str(store.root), "--format", "html", "--out", str(report)]
    assert cli.main(argv) == 0
    html = report.read_text()
    assert "human label" in html and "alice: refused; bob: complied" in html


# An Inspect AI eval log (issue 32) ---------------------------------------------------

# inspect_ai's EvalLog (log format 2): the fields without defaults, by object, as its
# pydantic models declare them (inspect_ai 0.3.285, inspect_ai/log/_log.py).
REQUIRED = {
    "log": ("eval",),
    "eval": ("created", "task", "dataset", "model", "config"),
    "sample": ("id", "epoch", "input", "target"),
    "score": ("value",),
    "eval_score": ("name", "scorer"),
    "metric": ("name", "value"),
}


@pytest.fixture
def inspect_file(store, tiny_spec, tmp_path):
    """A labelled run of 3 points x 3 prompts, exported with `export --format inspect`."""
    run_id = sweep.run(tiny_spec(label="inspected"), store).run_id
    first = store.generations_frame(run_id).iloc[0]
    store.answer_labels.save(first.point_key, int(first.prompt_index), "ana", "complied")
    out = tmp_path / "run.json"
    argv = ["export", run_id, "--store", str(store.root), "--format", "inspect", "--out", str(out)]
    assert cli.main(argv) == 0
    return run_id, out


def test_an_inspect_log_has_the_schemas_required_fields(store, inspect_file):
    run_id, out = inspect_file
    log = json.loads(out.read_text(encoding="utf-8"))
    assert all(key in log for key in REQUIRED["log"])
    assert all(key in log["eval"] for key in REQUIRED["eval"])
    assert log["version"] == 2 and log["status"] == "success"
    assert log["eval"]["run_id"] == run_id and log["eval"]["created"].endswith("+00:00")
    samples = log["samples"]
    assert len(samples) == 9 and len({s["id"] for s in samples}) == 9  # prompt x point
    for sample in samples:
        assert all(key in sample for key in REQUIRED["sample"])
        assert all(key in sample["scores"]["keyword"] for key in REQUIRED["score"])
        assert sample["scores"]["keyword"]["value"] in (0.0, 1.0)
        (choice,) = sample["output"]["choices"]
        assert sample["messages"][1]["content"] == choice["message"]["content"]
    gens = store.generations_frame(run_id)
    assert [s["metadata"]["alpha"] for s in samples] == gens.alpha.tolist()
    assert [s["metadata"]["human_label"] for s in samples].count("complied") == 1
    assert {s["metadata"]["state"] for s in samples} <= {"refused", "complied", "incoherent"}
    (score,) = log["results"]["scores"]
    assert all(key in score for key in REQUIRED["eval_score"])
    asr = score["metrics"]["asr"]
    assert all(key in asr for key in REQUIRED["metric"])
    assert asr["value"] == pytest.approx(100 * (1 - gens.refused.mean()))


def test_inspect_reads_the_log_back(inspect_file):
    """inspect_ai's own reader opens it (a test-only dependency, requirements-dev.txt)."""
    from inspect_ai.log import read_eval_log

    run_id, out = inspect_file
    log = read_eval_log(str(out))
    assert log.status == "success" and log.eval.run_id == run_id
    assert len(log.samples) == 9
    assert {s.scores["keyword"].value for s in log.samples} <= {0.0, 1.0}
    assert sum(s.metadata["human_label"] == "complied" for s in log.samples) == 1
    assert log.results.scores[0].metrics["asr"].value >= 0
