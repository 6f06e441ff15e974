"""A sweep's model session: the loaded model, its base copy and directions, placed to fit.

The sweep verb opens one per sweep and asks it for answers, likelihoods and a
``Perturber``; judging stays outside the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers

from landscape_core.engine import likelihood
from landscape_core.engine.decoder import Generation, generate
from landscape_core.engine.directions import Directions
from landscape_core.engine.gradient import data_direction
from landscape_core.engine.models import LoadedModel, load_model
from landscape_core.engine.perturb import FixedWeights, Perturber, is_quantised, snapshot
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.resources import (
    MemoryPlan,
    ModelShape,
    available_memory,
    free_disk,
    plan_memory,
)
from landscape_core.plan.tokens import check_context
from landscape_core.spec.config import DirectionSpec, SweepSpec, TrainingDataSpec

COSINE_TOLERANCE = 1e-6  # |cos(d1, d2)| must be below this in 2D


class Session:
    """The loaded model with its base copy and directions, sized to fit memory.

    ``root`` is the store's directory: the bundled model's converted copy lives under
    ``root/models``, spilled tensors under ``root/tmp``. ``stop_texts`` end answers
    early when the spec says ``stop: verdict`` (the caller's judge decides which).
    """

    def __init__(
        self,
        spec: SweepSpec,
        loaded: LoadedModel,
        root: Path,
        prompts: Sequence[str],
        stop_texts: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.loaded = loaded
        self.stop_texts = tuple(stop_texts)
        model, tokenizer = loaded.model, loaded.tokenizer
        # the prompts as the model reads them; one too long for its context is refused
        self.texts, self.add_special = render_prompts(
            tokenizer, tuple(prompts), spec.system_prompt, spec.model.chat_format
        )
        ids = tokenizer(self.texts, add_special_tokens=self.add_special).input_ids
        self.n_params = sum(p.numel() for p in dict(model.named_parameters()).values())
        self.memory = self._plan_memory(root, prompts, [len(row) for row in ids])
        self._spill = root / "tmp" if self.memory.base_copy == "disk" else None
        self._models = root / "models"
        self.directions: Directions | None = None
        self.cosine: float | None = None
        self._gradients: dict[TrainingDataSpec, dict[str, torch.Tensor]] = {}
        # 8/4-bit weights generate at theta_0 only (SweepSpec refuses other points)
        self.quantised = is_quantised(model)
        host = self.memory.base_copy == "host"  # pinned host memory: a GPU short of memory
        self.base = {} if self.quantised else snapshot(model, self._spill, host=host)
        self.use_directions(spec.replicates()[0])

    def use_directions(self, specs: tuple[DirectionSpec, ...]) -> None:
        """Perturb along these (single-seed) directions from now on: one landscape's."""
        if self.quantised or (self.directions is not None and self.directions.specs == specs):
            return
        self.directions = None  # a cached predecessor's memory or file goes first
        for spec in specs:  # the weights are theta_0 here: perturbations restore them
            if spec.data is not None and spec.data not in self._gradients:
                self._gradients[spec.data] = data_direction(
                    self.loaded, spec.data, self.spec.model.chat_format
                )
        self.directions = Directions(
            specs, self.base, self._models, self.memory.cache_directions, spill=self._spill,
            gradients=self._gradients,
        )  # fmt: skip
        self.cosine = self.directions.cosine()
        if self.cosine is not None and abs(self.cosine) >= COSINE_TOLERANCE:
            raise RuntimeError(f"cos(d1, d2) = {self.cosine:.3g}, not orthogonal")

    @classmethod
    def open(
        cls, spec: SweepSpec, root: Path, prompts: Sequence[str], stop_texts: Sequence[str] = ()
    ) -> Session:
        """Load the spec's model and prepare it for perturbation."""
        return cls(spec, load_model(spec.model, root / "models"), root, prompts, stop_texts)

    def _plan_memory(self, root: Path, prompts: Sequence[str], lengths: list[int]) -> MemoryPlan:
        model = self.loaded.model
        weight_bytes = next(model.parameters()).element_size()
        shape = ModelShape.from_config(model.config.to_dict(), self.n_params, weight_bytes)
        longest = check_context(lengths, prompts, shape.context, self.spec.generation)
        cuda = self.loaded.device == "cuda"
        free = torch.cuda.mem_get_info()[0] if cuda else available_memory()
        free += self.n_params * weight_bytes  # the model is loaded: its weights count as free
        return plan_memory(
            self.spec, shape, free=free, disk_free=free_disk(root), cuda=cuda,
            prompt_tokens=longest,
        )  # fmt: skip

    def perturber(self) -> Perturber:
        if self.quantised:
            return FixedWeights(self.loaded.model)
        assert self.directions is not None
        return Perturber(self.loaded.model, self.base, self.directions)

    def generate(
        self, texts: list[str], add_special: bool, should_stop: Callable[[], bool] | None
    ) -> list[Generation]:
        return generate(
            self.loaded.model,
            self.loaded.tokenizer,
            texts,
            self.spec.generation,
            batch_size=self.spec.runtime.batch_size,
            add_special_tokens=add_special,
            should_stop=should_stop,
            stop_texts=self.stop_texts,
        )

    def answer_nll(
        self, texts: list[str], answers: list[str], add_special: bool
    ) -> list[tuple[float, int]]:
        return likelihood.answer_nll(
            self.loaded.model, self.loaded.tokenizer, texts, answers, add_special
        )

    def refusal_probability(self, texts: list[str], add_special: bool) -> list[float]:
        return likelihood.refusal_probability(
            self.loaded.model, self.loaded.tokenizer, texts, add_special
        )

    def choice_logprobs(
        self, texts: list[str], options: tuple[str, ...], add_special: bool
    ) -> list[list[float]]:
        return likelihood.choice_logprobs(
            self.loaded.model, self.loaded.tokenizer, texts, options, add_special
        )

    def provenance(self) -> dict[str, Any]:
        """What this session ran on: device, dtype, sizes, placement and libraries."""
        return {
            "device": self.loaded.device,
            "dtype": self.loaded.dtype,
            "n_params": self.n_params,
            "cached_directions": self.memory.cache_directions,
            "base_copy_in": self.memory.base_copy,
            "memory_estimate": self.memory.estimate.describe(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
