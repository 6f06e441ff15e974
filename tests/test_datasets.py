import pandas as pd
import pytest

from landscape_core.errors import UserError
from landscape_core.spec.config import PromptSetSpec
from landscape_core.spec.datasets import DATA_DIR, load_prompts


def test_advbench_default_is_the_first_80_goals():
    goals = pd.read_csv(DATA_DIR / "advbench/harmful_behaviors.csv").goal.tolist()
    assert load_prompts(PromptSetSpec()).prompts == tuple(goals[:80])


def test_xstest_safe_subset_has_250_prompts():
    spec = PromptSetSpec(source="xstest", subset="safe", limit=None)
    assert len(load_prompts(spec).prompts) == 250


def test_mt_bench_uses_turn_one():
    prompts = load_prompts(PromptSetSpec(source="mt_bench", limit=None)).prompts
    assert len(prompts) == 80
    assert prompts[0].startswith("Compose an engaging travel blog post")


def test_csv_without_the_column_lists_the_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("question,id\nhello,1\n")
    with pytest.raises(UserError, match="no column 'prompt'.*question, id"):
        load_prompts(PromptSetSpec(source="file", path=str(path), column="prompt"))


def test_empty_prompt_set_is_an_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt\n\n")
    with pytest.raises(UserError, match="empty"):
        load_prompts(PromptSetSpec(source="file", path=str(path), column="prompt"))


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{not json}\n')
    with pytest.raises(UserError, match=r"p.jsonl:2"):
        load_prompts(PromptSetSpec(source="file", path=str(path), column="prompt"))


def test_jsonl_file_with_chosen_column(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"q": "first"}\n{"q": "second"}\n')
    spec = PromptSetSpec(source="file", path=str(path), column="q", limit=None)
    assert load_prompts(spec).prompts == ("first", "second")


def test_hash_changes_with_content(tmp_path):
    path = tmp_path / "p.csv"
    spec = PromptSetSpec(source="file", path=str(path), column="prompt")
    path.write_text("prompt\na\n")
    first = load_prompts(spec).hash
    path.write_text("prompt\nb\n")
    assert load_prompts(spec).hash != first


def test_train_and_heldout_splits_are_disjoint_and_cover_the_set():
    spec = dict(source="xstest", subset="safe", limit=None)
    train = load_prompts(PromptSetSpec(**spec, split="train")).prompts
    heldout = load_prompts(PromptSetSpec(**spec, split="heldout")).prompts
    assert not set(train) & set(heldout)
    assert len(train) + len(heldout) == 250


def test_benign_instructions_are_vendored_and_distinct_from_mt_bench():
    benign = load_prompts(PromptSetSpec(source="benign", limit=None)).prompts
    mt_bench = load_prompts(PromptSetSpec(source="mt_bench", limit=None)).prompts
    assert len(benign) == 119
    assert not set(benign) & set(mt_bench)
