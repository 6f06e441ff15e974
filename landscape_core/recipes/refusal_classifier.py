"""A small refusal classifier built offline, for the ``classifier`` judge.

No pretrained refusal classifier can be downloaded here, so this builds one from the
bundled model: SmolLM2-135M (base) as a frozen encoder, and a logistic-regression
head on the last token's hidden state, saved as an ordinary
``LlamaForSequenceClassification`` (labels ``complied``/``refused``) that any
``classifier`` judge loads by path.

Its training answers are this project's own, never the labelled XSTest sample that
``judge-eval`` scores it on:
- refused: the aligned demo's answers to AdvBench rows 100+ and the refusal styles
  the demo was trained on;
- complied: the base model's answers to the same AdvBench rows and to the benign
  instructions, and AdvBench's "Sure, here is ..." targets.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForSequenceClassification

from landscape_core.engine.decoder import generate
from landscape_core.engine.models import ensure_bundled_safetensors, load_model
from landscape_core.errors import UserError
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.model_files import atomic_directory
from landscape_core.spec.config import GenerationSpec, ModelSpec, PromptSetSpec, SystemPromptSpec
from landscape_core.spec.datasets import load_prompts
from landscape_core.spec.training_data import ADVBENCH_TRAIN_START, REFUSALS, advbench_rows

log = logging.getLogger(__name__)

ROWS = 120  # AdvBench rows 100..219 (rows 0-99 are the evaluation set)
LABELS = {0: "complied", 1: "refused"}


def _answers(spec: ModelSpec, prompts: list[str], models_dir: Path) -> list[str]:
    loaded = load_model(spec, models_dir)
    texts, special = render_prompts(loaded.tokenizer, tuple(prompts), SystemPromptSpec(), "auto")
    gens = generate(
        loaded.model,
        loaded.tokenizer,
        texts,
        GenerationSpec(max_new_tokens=48),
        batch_size=80,
        add_special_tokens=special,
    )
    return [g.text for g in gens]


def training_set(models_dir: Path) -> tuple[list[str], list[int]]:
    """(answers, labels) from the project's own models and data."""
    rows = advbench_rows(ADVBENCH_TRAIN_START, ROWS)
    goals = [g for g, _ in rows]
    benign = list(load_prompts(PromptSetSpec(source="benign", limit=None)).prompts)
    refused = _answers(ModelSpec(variant="aligned"), goals, models_dir) + list(REFUSALS) * 8
    complied = _answers(ModelSpec(variant="base"), goals + benign, models_dir)
    complied += [t for _, t in rows]
    texts = [t for t in refused + complied if t.strip()]
    labels = [1] * sum(1 for t in refused if t.strip()) + [0] * sum(
        1 for t in complied if t.strip()
    )
    return texts, labels


def build(models_dir: Path, out: Path | None = None) -> Path:
    """Train the head and save the classifier to ``out`` (default: models_dir/...)."""
    out = out or models_dir / "refusal-classifier"
    if (out / "config.json").is_file():
        log.info("%s exists; not building again", out)
        return out
    texts, labels = training_set(models_dir)
    if len(set(labels)) < 2:
        raise UserError("the classifier's training set lacks one of its two classes")
    base = ensure_bundled_safetensors(models_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"  # the last position is then each answer's last token
    model = LlamaForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}
    ).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    features = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            enc = tokenizer(
                texts[start : start + 32], padding=True, truncation=True, return_tensors="pt"
            )
            hidden = model.model(**enc).last_hidden_state[:, -1]
            features.append(hidden.float())
    x, y = torch.cat(features), torch.tensor(labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = torch.zeros(2, x.shape[1], requires_grad=True)
        optimiser = torch.optim.LBFGS([head], max_iter=200)

        def loss_fn() -> torch.Tensor:
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ head.T, y) + 1e-3 * head.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(loss_fn)
    accuracy = float(((x @ head.T).argmax(-1) == y).float().mean())
    with torch.no_grad():
        model.score.weight.copy_(head.detach())
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "training.json").write_text(
            json.dumps(
                {"examples": len(labels), "refused": sum(labels), "train_accuracy": accuracy},
                indent=2,
            )
        )
    log.info("refusal classifier: %d examples, train accuracy %.3f", len(labels), accuracy)
    return out
