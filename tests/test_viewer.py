"""What researchers expect of an eval viewer (issue 32): a transcript per answer, one
table of answers across runs, and comments beside the labels."""

from __future__ import annotations

import shutil

import pytest

from landscape_core import sweep
from landscape_core.readers.transcript import transcript, transcript_text
from landscape_core.rescore import rescore
from landscape_core.spec.config import JudgeSpec
from tests.test_links import open_page

SYSTEM = "Be brief. <b>not markup</b>"


@pytest.fixture(scope="module")
def viewed(tmp_path_factory, tiny_model_dir):
    """A store with a custom-system-prompt run judged twice, and one in a raw format."""
    from landscape_core.spec.config import SweepSpec
    from landscape_core.store.runs import Store

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
    from transformers import AutoTokenizer

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
