"""Finetuning recipes: safety alignment of the demo model, harmful k-shot, and a mix.

LoRA adapters (peft) train on CPU in minutes; ``method: full`` trains every weight
(for GPUs). Training is deterministic for a fixed seed: the RNG is forked, seeded
from the spec, and never leaks into the caller's global state. An adapter is written
to a temporary directory and renamed, so a cancelled or crashed run leaves nothing.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from landscape_core import __version__
from landscape_core.engine.models import load_model
from landscape_core.engine.training import collate, encode, own_answers, training_texts
from landscape_core.errors import Cancelled, UserError
from landscape_core.hashing import content_hash
from landscape_core.plan.checkpoints import CHECKPOINTS, RECORD, Checkpoint
from landscape_core.plan.model_files import atomic_directory
from landscape_core.spec.config import (
    ADDED,
    SHOT_RECIPES,
    GenerationSpec,
    ModelSpec,
    PromptSetSpec,
    Spec,
    TrainingDataSpec,
)
from landscape_core.spec.training_data import (
    ALIGN_BENIGN,
    ALIGN_HARMFUL_ROWS,
    Distill,
    Example,
    data_hash,
    examples_hash,
    file_examples,
    recipe_examples,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneSpec(Spec):
    """A finetuning run. ``shots`` is K for ``harmful`` and ``mix``.

    ``align``: AdvBench rows 100.. with refusals, plus benign prompts (XSTest's safe
    ``train`` split and the project's everyday instructions) answered by the base model
    itself (self-distillation), so it learns to refuse without refusing everything.
    MT-Bench and XSTest's held-out half are never trained on.
    ``harmful``, ``sure-prefix``, ``mix``: see ``spec.config.FINETUNE_RECIPES``.
    ``file``: the prompt/answer pairs of the CSV at ``data`` (what ``risk DATA`` checks).
    """

    recipe: Literal["align", "harmful", "sure-prefix", "mix", "file"] = "align"
    base: ModelSpec | None = None  # None: bundled base for align, the aligned demo otherwise
    shots: int = 0
    seed: int = 0
    method: Literal["lora", "full"] = "lora"
    lora_rank: int = 8
    lora_alpha: int = 16
    epochs: int = 3
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 256
    harmful_rows: int = ALIGN_HARMFUL_ROWS  # align: AdvBench rows (from 100) with refusals
    benign: tuple[PromptSetSpec, ...] = ALIGN_BENIGN
    distill: GenerationSpec = field(default_factory=lambda: GenerationSpec(max_new_tokens=64))
    # adapters saved along the way (evenly spaced, the last step included): the
    # finetune's path over the landscape (`trajectory`); 0 saves none
    checkpoints: int = field(default=10, metadata=ADDED)
    data: str = field(default="", metadata=ADDED)  # recipe file: the CSV of pairs

    def __post_init__(self) -> None:
        if self.base is None:
            variant = "base" if self.recipe == "align" else "aligned"
            object.__setattr__(self, "base", ModelSpec(kind="bundled", variant=variant))
        if self.recipe in SHOT_RECIPES and self.shots < 1:
            raise UserError(f"finetune {self.recipe} needs --shots K (K >= 1)")
        if self.recipe in ("align", "file") and self.shots:
            raise UserError(f"finetune {self.recipe} takes no --shots")
        if (self.recipe == "file") != bool(self.data):
            raise UserError("finetune: recipe 'file' needs --data PAIRS.csv, and only it takes one")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise UserError("finetune: epochs and batch_size must be >= 1, learning_rate > 0")
        if not 0 <= self.checkpoints <= 1000:
            raise UserError("finetune: `checkpoints` must be in 0..1000 (0 saves none)")

    @property
    def name(self) -> str:
        """The output directory's name, unique to every resolved field.

        It hashes ``full_dict()``, not ``key()`` (which drops defaults), so a changed
        default never reuses an old adapter, while an option added later at its default
        (``ADDED``) keeps every trained adapter's name.
        """
        shots = f"-{self.shots}shot" if self.shots else ""
        fields = self.full_dict()
        if self.recipe == "file":  # named by its rows, not its path
            fields["data"] = examples_hash(file_examples(self.data))
            shots = f"-{Path(self.data).stem}"
        elif self.recipe != "align":  # fixed rows: a change of the data is a new adapter
            fields["data"] = data_hash(TrainingDataSpec(recipe=self.recipe, shots=self.shots))
        return f"{self.recipe}{shots}-seed{self.seed}-{content_hash(fields)[:8]}"


def build_examples(spec: FinetuneSpec, distill: Distill) -> list[Example]:
    """The recipe's training examples. ``distill`` answers benign prompts (align only)."""
    if spec.recipe == "file":
        return file_examples(spec.data)
    return recipe_examples(spec.recipe, spec.shots, distill, spec.harmful_rows, spec.benign)


def finetune(
    spec: FinetuneSpec,
    models_dir: Path,
    out: Path | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Train, then write the adapter (or full model) with its recipe and log to ``out``.

    ``out`` defaults to ``models_dir/<recipe>-<shots>shot-seed<seed>-<hash>``. An
    existing finished output is returned as is.
    """
    out = out or models_dir / spec.name
    if (out / "recipe.json").is_file():
        log.info("%s exists; not training again", out)
        return out
    loaded = load_model(spec.base, models_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    chat_format = spec.base.chat_format

    def render(prompts: list[str]) -> list[str]:
        return training_texts(tokenizer, prompts, chat_format)

    def distill(prompts: list[str]) -> list[str]:
        return own_answers(model, tokenizer, prompts, chat_format, spec.distill)

    examples = build_examples(spec, distill)
    if not examples:
        raise UserError("the finetuning set is empty: check the recipe's data")
    started = time.monotonic()
    steps: list[dict[str, Any]] = []
    data_hash = examples_hash(examples)
    with atomic_directory(out) as tmp:  # a cancelled run leaves no output, checkpoints included

        def checkpoint(trained: PreTrainedModel, record: dict[str, Any]) -> None:
            saved = Checkpoint(record["step"], record["epoch"], record["loss"], data_hash)
            with atomic_directory(tmp / CHECKPOINTS / saved.directory_name) as directory:
                _save(spec, trained, tokenizer, directory)
                (directory / RECORD).write_text(json.dumps(saved.to_dict()))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            trained = _train(spec, model, tokenizer, render, examples, steps, on_step,
                             should_stop, checkpoint)  # fmt: skip
        _save(spec, trained, tokenizer, tmp)
        provenance = {
            "spec": spec.to_dict(),
            "examples": len(examples),
            "examples_hash": data_hash,
            "seconds": round(time.monotonic() - started, 1),
            "final_loss": steps[-1]["loss"] if steps else None,
            "packages": {
                "landscape_core": __version__,
                "torch": torch.__version__,
                "peft": _version("peft"),
                "transformers": _version("transformers"),
                "python": platform.python_version(),
            },
        }
        (tmp / "train_log.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
        (tmp / "recipe.json").write_text(json.dumps(provenance, indent=2))
    return out


def _version(package: str) -> str:
    return version(package)


def _train(
    spec: FinetuneSpec,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    render: Callable[[list[str]], list[str]],
    examples: list[Example],
    steps: list[dict[str, Any]],
    on_step: Callable[[dict[str, Any]], None] | None,
    should_stop: Callable[[], bool] | None,
    checkpoint: Callable[[PreTrainedModel, dict[str, Any]], None] = lambda model, record: None,
) -> PreTrainedModel:
    """Next-token loss on the answers only (prompt tokens are masked out).

    ``checkpoint`` is called every ``total / spec.checkpoints`` steps and at the last.
    """
    model = trainable(spec, model)
    total = spec.epochs * math.ceil(len(examples) / spec.batch_size)
    every = math.ceil(total / spec.checkpoints) if spec.checkpoints else 0
    for record in train_steps(spec, model, tokenizer, render, examples, should_stop):
        steps.append(record)
        if on_step is not None:
            on_step(record)
        if every and (record["step"] % every == 0 or record["step"] == total):
            checkpoint(model, record)
    model.eval()
    return model


def trainable(spec: FinetuneSpec, model: PreTrainedModel) -> PreTrainedModel:
    """The model as the recipe trains it: LoRA adapters injected, or every weight free.

    LoRA injects into ``model`` itself: pass a copy to leave the original untouched.
    """
    if spec.method == "lora":
        config = LoraConfig(
            r=spec.lora_rank,
            lora_alpha=spec.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",  # every attention and MLP projection
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def train_steps(
    spec: FinetuneSpec,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    render: Callable[[list[str]], list[str]],
    examples: list[Example],
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """The recipe's optimizer steps on a ``trainable`` model, one record per step.

    The one training loop: ``finetune`` runs it to the end and the risk lookahead
    takes its first k steps, so the preflight moves the model exactly as training does
    (same batches in the same order for a seed, same AdamW state).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.0)
    encoded = encode(tokenizer, render([e.prompt for e in examples]), examples, spec.max_length)
    model.train()
    step = 0
    for epoch in range(spec.epochs):
        order = torch.randperm(len(encoded)).tolist()
        for start in range(0, len(order), spec.batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled("finetuning stopped; nothing was written")
            batch = [encoded[i] for i in order[start : start + spec.batch_size]]
            b = collate(batch, tokenizer.pad_token_id)
            loss = model(input_ids=b.ids, attention_mask=b.mask, labels=b.labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            yield {"step": step, "epoch": epoch, "loss": round(loss.item(), 5)}


def _save(
    spec: FinetuneSpec, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path
) -> None:
    """LoRA: the adapter in fp16 safetensors. Full: the whole model as safetensors."""
    if spec.method == "full":
        model.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)
        return
    model.save_pretrained(directory, safe_serialization=True)
    (directory / "README.md").unlink(missing_ok=True)  # peft's template model card
    path = directory / "adapter_model.safetensors"
    weights = {k: v.to(torch.float16) for k, v in load_file(str(path)).items()}
    save_file(weights, str(path), metadata={"format": "pt"})
    # peft writes `target_modules` from a set, in an order that changes with each
    # process's string hashing; the config's bytes name the adapter (its fingerprint),
    # so it is written sorted, and the same training gives the same run ids
    config = directory / "adapter_config.json"
    data = json.loads(config.read_text())
    if isinstance(data.get("target_modules"), list):
        data["target_modules"] = sorted(data["target_modules"])
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
