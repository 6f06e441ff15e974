"""Model-based judges: a sequence classifier and a chat model with a rubric (tiny models)."""

import pytest

from landscape_core import cli, sweep
from landscape_core.errors import UserError
from landscape_core.judging.model_judges import parse_llama_guard, parse_rubric
from landscape_core.judging.registry import make_judge
from landscape_core.judging.verdict import score_all
from landscape_core.plan.identity import judge_label
from landscape_core.spec.config import JudgeSpec


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir, tmp_path_factory):
    """A 2-layer Llama sequence classifier with labels complied / refusal."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
        id2label={0: "complied", 1: "refusal"}, label2id={"complied": 0, "refusal": 1},
        initializer_range=0.5,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("classifier")
    LlamaForSequenceClassification(config).save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return directory


ANSWERS = ["I'm sorry, I cannot help.", "Sure, here is the cake.", "Hello!", "As an AI model"]


def test_classifier_judges_by_its_refusal_labels(tiny_classifier):
    spec = JudgeSpec(name="classifier", path=str(tiny_classifier), refusal_labels=("refusal",))
    verdicts = score_all(make_judge(spec), ["q"] * len(ANSWERS), ANSWERS)
    assert len(verdicts) == len(ANSWERS)
    for v in verdicts:
        p_refusal = float(v.evidence.split("= ")[1].rstrip(")"))
        assert v.refused == (p_refusal >= 0.5)
        assert 0.5 <= v.confidence <= 1.0
    # the same answers with the other label as refusal give the opposite verdicts
    flipped = JudgeSpec(name="classifier", path=str(tiny_classifier), refusal_labels=("complied",))
    again = score_all(make_judge(flipped), ["q"] * len(ANSWERS), ANSWERS)
    assert [v.refused for v in again] == [not v.refused for v in verdicts]


def test_classifier_with_an_unknown_label_names_the_real_ones(tiny_classifier):
    spec = JudgeSpec(name="classifier", path=str(tiny_classifier), refusal_labels=("REJECT",))
    with pytest.raises(UserError, match="its labels are"):
        make_judge(spec)


def test_classifier_needs_a_path_and_labels():
    with pytest.raises(UserError, match="refusal_labels"):
        JudgeSpec(name="classifier", path="x")


@pytest.mark.parametrize(
    ("reply", "refused"),
    [("REFUSAL", True), ("Partial.", True), ("compliance", False), ("I think", None)],
)
def test_rubric_replies_parse(reply, refused):
    assert parse_rubric(reply)[0] is refused


def test_llama_guard_unsafe_means_complied():
    assert parse_llama_guard("unsafe\nO3")[0] is False
    assert parse_llama_guard(" safe")[0] is True


@pytest.mark.parametrize("fmt", ["rubric", "llama-guard"])
def test_llm_judge_runs_a_chat_model_and_reports_what_it_said(tiny_model_dir, fmt):
    judge = make_judge(JudgeSpec(name="llm-judge", path=str(tiny_model_dir), format=fmt))
    verdicts = score_all(judge, ["q1", "q2"], ANSWERS[:2])
    assert len(verdicts) == 2
    for v in verdicts:  # the random tiny model says no verdict word: counted as compliance
        assert "judge" in v.evidence


def test_rescore_with_a_classifier_loads_no_generator(
    tiny_spec, store, tiny_classifier, monkeypatch
):
    summary = sweep.run(tiny_spec(), store)
    from landscape_core.engine import models, session

    def no_generator(*args, **kwargs):
        raise AssertionError("re-scoring loaded a generator")

    monkeypatch.setattr(models, "load_model", no_generator)
    monkeypatch.setattr(session, "load_model", no_generator)
    argv = ["rescore", summary.run_id, "--store", str(store.root), "--judge", "classifier"]
    argv += ["--judge-path", str(tiny_classifier), "--refusal-labels", "refusal"]
    assert cli.main(argv) == 0
    spec = JudgeSpec(name="classifier", path=str(tiny_classifier), refusal_labels=("refusal",))
    label = judge_label(spec, store.file_digest)  # its name, directory and files' digest
    assert label.startswith(f"classifier:{tiny_classifier.name}@")
    assert label in store.judges(summary.run_id)
    assert store.points_frame(summary.run_id, label).asr.notna().all()
