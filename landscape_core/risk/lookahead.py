"""The risk lookahead: k real optimizer steps of the user's recipe, in a throwaway copy.

A step-0 gradient cannot see what training does (AdamW's sign-like first update in a
LoRA subspace, data the model already fits), so the preflight takes the recipe's own
first steps (``finetune.train_steps``: same batches, same optimizer, same seed) on a
deep copy and, after each, measures with forward passes only:

- the refusal log-odds on held-out AdvBench probes (``likelihood.refusal_probability``);
- the token KL to the original model on MT-Bench and XSTest-safe, teacher-forced on the
  original model's own greedy answers (generic drift);
- the refusal log-odds on XSTest-safe (over-refusal).

The score is the safety drift per unit of generic drift, ``-delta / sqrt(KL)``, so a
dataset that merely moves the model a lot does not look dangerous for that alone.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from landscape_core.engine.likelihood import refusal_probability
from landscape_core.engine.models import LoadedModel, load_model
from landscape_core.engine.training import (
    IGNORE,
    Encoded,
    batches,
    collate,
    encode,
    own_answers,
    summed_loss,
    training_texts,
)
from landscape_core.files import atomic_write_text
from landscape_core.finetune import FinetuneSpec, build_examples, train_steps, trainable
from landscape_core.hashing import content_hash
from landscape_core.risk.anchoring import Gradients, anchoring
from landscape_core.risk.spec import (
    LookaheadReport,
    LookaheadStep,
    Probes,
    lookahead_report,
    sampled_rows,
)
from landscape_core.spec.config import GenerationSpec, ModelSpec
from landscape_core.spec.datasets import load_prompts
from landscape_core.spec.training_data import Example

LOGIT_FLOOR = 1e-12  # probabilities are clipped to [floor, 1 - floor] before the log-odds


def log_odds(probabilities: Sequence[float]) -> float:
    """The mean refusal log-odds over prompts (clipped, so one certain prompt is finite)."""
    ps = [min(max(p, LOGIT_FLOOR), 1 - LOGIT_FLOOR) for p in probabilities]
    return sum(math.log(p / (1 - p)) for p in ps) / len(ps)


class Reference:
    """What the original model fixes once per model and probes, whatever the data.

    Its greedy answers to the generic prompts (the KL's teacher text), its measures at
    step 0, and its logits on that text. A store keeps the first two (``to_dict``,
    ``cached``: text and numbers), so a later preflight of any data neither generates
    nor measures step 0 again; the logits are rebuilt once per preflight and serve
    every step it measures.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        chat_format: str,
        probes: Probes,
        answers: dict[str, list[str]] | None = None,
        origin: LookaheadStep | None = None,
    ) -> None:
        started = time.monotonic()
        model.eval()  # the measures are of the model itself: no dropout

        def texts(spec) -> list[str]:  # noqa: ANN001
            return training_texts(tokenizer, load_prompts(spec).prompts, chat_format)

        self.refusal = texts(probes.refusal)
        self.over_refusal = texts(probes.over_refusal)
        generation = GenerationSpec(max_new_tokens=probes.answer_tokens)
        self.answers: dict[str, list[str]] = {}
        self.generic: dict[str, list[Encoded]] = {}
        for name, spec in probes.generic:
            prompts = load_prompts(spec).prompts
            self.answers[name] = (
                own_answers(model, tokenizer, prompts, chat_format, generation)
                if answers is None
                else list(answers[name])
            )
            examples = [Example(p, a) for p, a in zip(prompts, self.answers[name], strict=True)]
            rendered = training_texts(tokenizer, prompts, chat_format)
            self.generic[name] = encode(tokenizer, rendered, examples, probes.max_length)
        self.pad_id = tokenizer.pad_token_id
        self.logits = {name: original_logits(model, encoded, self.pad_id)
                       for name, encoded in self.generic.items()}  # fmt: skip
        self.origin = origin or measure(model, model, tokenizer, self, 0, None)
        self.kept = answers is not None  # read back from a store (``cached``), not generated
        self.seconds = time.monotonic() - started

    def to_dict(self) -> dict[str, Any]:
        """What a store keeps of it: the teacher answers and the step-0 measures."""
        return {"answers": self.answers, "origin": {**dataclasses.asdict(self.origin),
                                                    "kl": dict(self.origin.kl)}}  # fmt: skip

    @classmethod
    def cached(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        chat_format: str,
        probes: Probes,
        path: Path,
    ) -> Reference:
        """The reference kept at ``path``, or built and kept there (``kept`` says which).

        A file that cannot be read, or holds answers to other prompts (a crash
        mid-write, an older layout), is rebuilt and replaced.
        """
        kept = _kept(path, probes)
        if kept is not None:
            return cls(model, tokenizer, chat_format, probes, *kept)
        built = cls(model, tokenizer, chat_format, probes)
        atomic_write_text(path, json.dumps(built.to_dict(), indent=2))
        return built


def _kept(path: Path, probes: Probes) -> tuple[dict[str, list[str]], LookaheadStep] | None:
    """A kept reference's answers and step-0 measures, if the file holds them whole.

    Whole: every generic set has one answer per prompt of the probes (else it is stale).
    """
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        answers = {name: [str(a) for a in kept["answers"][name]] for name, _ in probes.generic}
        step = kept["origin"]
        origin = LookaheadStep(**{**step, "kl": tuple(sorted(step["kl"].items()))})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    counts = {name: len(load_prompts(spec).prompts) for name, spec in probes.generic}
    return (answers, origin) if all(len(answers[n]) == c for n, c in counts.items()) else None


REFERENCE_LAYOUT = 1  # bump when what a Reference measures changes: old files then rebuild


def reference_key(weights: str, spec: ModelSpec, loaded: LoadedModel, probes: Probes) -> str:
    """What decides a model's reference, as a file name.

    Its weights and load settings, the device and dtype it ran in, and the probes; not
    the data, the recipe, the steps or the rows.
    """
    fixed = {k: v for k, v in dataclasses.asdict(probes).items() if k not in ("steps", "rows")}
    return content_hash({"weights": weights, "model": spec.key_dict(), "device": loaded.device,
                         "dtype": loaded.dtype, "probes": fixed,
                         "layout": REFERENCE_LAYOUT})[:16]  # fmt: skip


BATCH = 8  # the KL's teacher-forced batches


def _answer_logits(
    model: PreTrainedModel, encoded: Sequence[Encoded], pad_id: int
) -> Iterator[torch.Tensor]:
    """Per batch of ``BATCH``, the model's logits at the answer positions (what KL compares)."""
    for start in range(0, len(encoded), BATCH):
        b = collate(encoded[start : start + BATCH], pad_id)
        keep = b.labels[:, 1:] != IGNORE
        yield model(input_ids=b.ids, attention_mask=b.mask).logits[:, :-1][keep]


@torch.inference_mode()
def original_logits(
    original: PreTrainedModel, encoded: Sequence[Encoded], pad_id: int
) -> list[torch.Tensor]:
    """The original model's answer logits, per batch, held for the whole preflight.

    In host memory, not the GPU's: they outlive every step.
    """
    return [logits.cpu() for logits in _answer_logits(original, encoded, pad_id)]


@torch.inference_mode()
def token_kl(
    original: Sequence[torch.Tensor],
    moved: PreTrainedModel,
    encoded: Sequence[Encoded],
    pad_id: int,
) -> float:
    """Mean KL(original || moved) per answer token, teacher-forced on ``encoded``.

    ``original``: the original model's logits per batch (``original_logits``), computed
    once, so each measured step runs only the moved copy.
    """
    total, tokens = 0.0, 0
    for p, q in zip(original, _answer_logits(moved, encoded, pad_id), strict=True):
        lp, lq = torch.log_softmax(p.to(q.device).double(), -1), torch.log_softmax(q.double(), -1)
        total += float((lp.exp() * (lp - lq)).sum())
        tokens += len(q)
    return total / max(tokens, 1)


def measure(
    original: PreTrainedModel,
    moved: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reference: Reference,
    step: int,
    loss: float | None,
) -> LookaheadStep:
    """One step's forward-only measures of ``moved`` against ``original``."""
    was_training = moved.training
    moved.eval()
    refusal = log_odds(refusal_probability(moved, tokenizer, reference.refusal))
    over = log_odds(refusal_probability(moved, tokenizer, reference.over_refusal))
    kl = {  # the original against itself is 0 by definition: no passes spent on it
        name: 0.0 if moved is original else token_kl(reference.logits[name], moved, encoded,
                                                      reference.pad_id)
        for name, encoded in reference.generic.items()
    }  # fmt: skip
    moved.train(was_training)
    return LookaheadStep(step, loss, refusal, over, tuple(sorted(kl.items())))


@torch.inference_mode()
def initial_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chat_format: str,
    examples: list[Example],
    max_length: int,
    batch_size: int,
) -> float:
    """The recipe's loss on ``examples`` at the model's weights (nats per answer token)."""
    texts = training_texts(tokenizer, [e.prompt for e in examples], chat_format)
    encoded = encode(tokenizer, texts, examples, max_length)
    total = sum(float(summed_loss(model, b)) for b in batches(encoded, batch_size,
                                                               tokenizer.pad_token_id))  # fmt: skip
    return total / max(sum(e.answer_tokens for e in encoded), 1)


def lookahead(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chat_format: str,
    recipe: FinetuneSpec,
    examples: list[Example],
    probes: Probes,
    reference: Reference | None = None,
    on_step: Callable[[LookaheadStep], None] | None = None,
    every_step: bool = False,
    rows: Sequence[int] | None = None,
) -> LookaheadReport:
    """``probes.steps`` steps of ``recipe`` on ``examples`` in a copy; ``model`` is untouched.

    Deterministic for ``recipe.seed``: the RNG is forked and seeded as ``finetune`` seeds
    it, so the copy sees the same first batches the real finetune will. The score needs
    only step 0 (the reference's) and step k, so the steps between are measured only with
    ``every_step`` (a trajectory); measuring never moves the weights, so step k's measures
    are the same either way. ``rows``: the rows the initial loss reads (default:
    ``sampled_rows`` of ``probes.rows``).
    """
    started = time.monotonic()
    reference = reference or Reference(model, tokenizer, chat_format, probes)
    model.eval()
    if rows is None:
        rows = sampled_rows(len(examples), probes.rows, recipe.seed)
    read = [examples[i] for i in rows]
    loss0 = initial_loss(model, tokenizer, chat_format, read, recipe.max_length,
                         recipe.batch_size)  # fmt: skip

    def render(prompts: list[str]) -> list[str]:
        return training_texts(tokenizer, prompts, chat_format)

    def measured_at(moved: PreTrainedModel, record: dict[str, Any]) -> LookaheadStep:
        one = measure(model, moved, tokenizer, reference, record["step"], record["loss"])
        if on_step is not None:
            on_step(one)
        return one

    measured = [reference.origin]
    if on_step is not None:
        on_step(reference.origin)
    records: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        moved = trainable(recipe, copy.deepcopy(model))
        training = 0.0  # the optimizer steps alone: what a full finetune repeats
        steps = train_steps(recipe, moved, tokenizer, render, examples)
        while len(records) < probes.steps:
            clock = time.monotonic()
            record = next(steps, None)
            training += time.monotonic() - clock
            if record is None:  # the whole finetune is shorter than k steps
                break
            records.append(record)
            if every_step:
                measured.append(measured_at(moved, record))
        if records and not every_step:
            measured.append(measured_at(moved, records[-1]))
    del moved, steps
    total = recipe.epochs * math.ceil(len(examples) / recipe.batch_size)
    report = lookahead_report(
        tuple(measured), examples=len(examples), initial_loss=loss0,
        seconds=time.monotonic() - started,
        finetune_estimate=training / max(len(records), 1) * total,
    )  # fmt: skip
    return dataclasses.replace(report, extra={"rows_read": len(read)})


def preflight(
    recipe_fields: dict[str, Any],
    models_dir: Path,
    probes: Probes,
    references: Path,
    weights: str,
    say: Callable[[str], None] = lambda message: None,
) -> LookaheadReport:
    """Load the recipe's base model, build its examples as ``finetune`` does, look ahead.

    ``references``: the folder where each model's ``Reference`` is kept, by
    ``reference_key`` (``weights``: the model files' fingerprint, as runs key them).
    """
    recipe = FinetuneSpec.from_dict(recipe_fields)
    loaded = load_model(recipe.base, models_dir)
    model, tokenizer, chat_format = loaded.model, loaded.tokenizer, recipe.base.chat_format

    def distill(prompts: list[str]) -> list[str]:
        return own_answers(model, tokenizer, prompts, chat_format, recipe.distill)

    examples = build_examples(recipe, distill)

    def progress(step: LookaheadStep) -> None:
        say(f"  step {step.step}: refusal log-odds {step.refusal_logit:+.3f}, "
            f"KL {step.mean_kl:.3g}")  # fmt: skip

    path = references / f"{reference_key(weights, recipe.base, loaded, probes)}.json"
    fixed = Reference.cached(model, tokenizer, chat_format, probes, path)
    say("the model's reference, its answers to the generic prompts and its step-0 measures: "
        + ("kept from an earlier preflight" if fixed.kept else "built, and kept"))  # fmt: skip
    # the rows the initial loss and anchoring read: one sample for both
    rows = sampled_rows(len(examples), probes.rows, recipe.seed)
    report = lookahead(model, tokenizer, chat_format, recipe, examples, probes, fixed,
                       on_step=progress, rows=rows)  # fmt: skip
    reference_seconds = fixed.seconds
    del fixed  # its logits: not needed by anchoring
    say("anchoring: each example's gradient against the compliance and refusal anchors")
    started = time.monotonic()
    pulled = anchoring(Gradients(model, tokenizer, chat_format, recipe),
                       [examples[i] for i in rows])  # fmt: skip
    anchored = time.monotonic() - started  # the anchors' own gradients included
    top = [{"row": rows[i] + 1, "term": round(pulled.per_example[i], 4),
            "prompt": examples[rows[i]].prompt, "answer": examples[rows[i]].answer}
           for i in pulled.top()]  # fmt: skip  # row 1: the data's first example
    extra = {"anchoring": pulled.score, "shallowness": pulled.shallowness, "top_rows": top,
             "seconds": {"reference": reference_seconds, "lookahead": report.seconds,
                         "anchoring": anchored}}  # fmt: skip
    return dataclasses.replace(report, seconds=reference_seconds + report.seconds + anchored,
                               extra={**report.extra, **extra})  # fmt: skip
