"""One table names every judge: its kind, its factory, and how its label is found again."""

import importlib
import json
import sqlite3

import pytest

from landscape_core.cli import main
from landscape_core.errors import UserError
from landscape_core.judging.registry import make_judge
from landscape_core.spec.config import JudgeSpec
from landscape_core.spec.judges import JUDGES, names, resolve_label
from tests.test_cli import _config

CLASSIFIER = "classifier:clf@0123456789ab"


@pytest.mark.parametrize("entry", [e for e in JUDGES.values() if e.factory])
def test_every_factory_path_names_a_class(entry):
    module, attribute = entry.factory.split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_text_judges_are_made_from_the_table_and_sweep_only_ones_refused():
    for name in names("text"):
        assert make_judge(JudgeSpec(name=name)).score("q", "I'm sorry, I can't.").refused
    with pytest.raises(UserError, match="measure: refusal-likelihood"):
        make_judge(JudgeSpec(name="refusal-likelihood"))


def test_an_unknown_name_is_refused_when_the_spec_is_read():
    with pytest.raises(UserError, match="known judges: keyword, refusal-patterns"):
        JudgeSpec.from_dict({"name": "gpt-judge"})


def test_a_judge_asked_by_name_resolves_to_its_stored_label():
    stored = ["keyword", CLASSIFIER]
    assert resolve_label("classifier", stored) == CLASSIFIER
    assert resolve_label(CLASSIFIER, stored) == CLASSIFIER
    assert resolve_label(None, stored) == "keyword"
    assert resolve_label("refusal-patterns", []) == "refusal-patterns"  # nothing scored yet
    with pytest.raises(UserError, match=f"it has: keyword, {CLASSIFIER}"):
        resolve_label("refusal-patterns", stored)
    with pytest.raises(UserError, match="several labels"):
        resolve_label("classifier", [CLASSIFIER, "classifier:other@ba9876543210"])


def test_show_and_export_find_a_model_judge_by_its_name(tmp_path, tiny_model_dir, capsys):
    store = tmp_path / "s"
    assert main(["sweep", str(_config(tmp_path, tiny_model_dir)), "--store", str(store)]) == 0
    with sqlite3.connect(store / "store.sqlite") as db:  # a classifier's verdicts, copied
        db.execute(
            "INSERT INTO scores SELECT point_key, prompt_index, ?, refused, evidence, matched "
            "FROM scores WHERE judge = 'keyword'",
            (CLASSIFIER,),
        )
    capsys.readouterr()
    assert main(["show", "latest", "--json", "--judge", "keyword", "--store", str(store)]) == 0
    keyword = json.loads(capsys.readouterr().out)
    assert main(["show", "latest", "--json", "--judge", "classifier", "--store", str(store)]) == 0
    classifier = json.loads(capsys.readouterr().out)
    assert classifier["judge"] == CLASSIFIER
    assert classifier["visage"] == keyword["visage"] is not None
    out = tmp_path / "answers.jsonl"
    args = ["export", "latest", "--judge", "classifier", "--format", "jsonl", "--out", str(out)]
    assert main([*args, "--store", str(store)]) == 0
    assert len(out.read_text().splitlines()) == 9
    assert main(["show", "latest", "--judge", "xstest-prefix", "--store", str(store)]) == 2
    assert CLASSIFIER in capsys.readouterr().err
