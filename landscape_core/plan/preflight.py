"""Before a sweep: check a spec can run and estimate its time and memory, without torch.

The app's Launch page calls this on every change so bad input is reported inline;
``sweep.run`` calls ``check_grid`` too, so the CLI refuses the same grids.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from landscape_core.errors import UserError
from landscape_core.plan.gguf_meta import read_gguf
from landscape_core.plan.identity import n_grid_points
from landscape_core.plan.model_files import bundled_copy, model_dir
from landscape_core.plan.pace import (
    FIRST_GUESS_FACTOR,
    Throughput,
    assumed_per_slot,
    coherence_per_answer,
)
from landscape_core.plan.resources import (
    GiB,
    MemoryEstimate,
    ModelShape,
    available_memory,
    estimate_store_bytes,
    free_disk,
    plan_memory,
    resolve_dtype,
    visible_gpu,
)
from landscape_core.plan.tokens import check_context, prompt_lengths
from landscape_core.spec.config import ANSWER_MEASURES, SweepSpec
from landscape_core.spec.datasets import load_prompts
from landscape_core.spec.limits import parse_json

MAX_GRID_POINTS = 100_000  # ~2 weeks of CPU at the paper's settings
# A launch whose estimate may pass this asks for a confirmation: the Launch page's
# checkbox, the CLI's y/N or --yes (`sweep`, `submit`). Both read ``Preflight.upper``.
CONFIRM_HOURS = 2.0
LOAD_S = 10.0  # worker start and model load
CONVERT_S = 20.0  # the bundled model's first run converts its GGUF, once per store (18 s here)
POINT_OVERHEAD_S = 1.0  # setting the weights and rebuilding directions, per point
PREVIEW_PROMPTS = 5

# Where the sweep will run ("cpu" or "cuda") -> this machine's measured throughput of
# the spec's model there, or None. The caller reads the store (spec/ cannot).
MeasuredPace = Callable[[str], Throughput | None]
# The same device -> how many of the grid's distinct points are not stored yet (None:
# not known before the run, a basin search). The caller reads the store.
PointsToCompute = Callable[[str], int | None]


@dataclass(frozen=True)
class Preflight:
    n_points: int
    n_prompts: int
    n_params: int | None
    memory: MemoryEstimate | None
    seconds: float | None  # the estimate; a first guess's low end
    first_prompts: tuple[str, ...] = ()  # what the model will be sent first, for a preview
    upper: float | None = None  # the high end: what the confirm guard reads
    measured_points: int = 0  # how many of this machine's points the estimate is from
    to_compute: int | None = None  # points not stored yet (None: all of them, or unknown)

    def needs_confirmation(self, n_runs: int = 1) -> bool:
        """Whether ``n_runs`` such runs may pass ``CONFIRM_HOURS`` (the app and CLI ask)."""
        return (self.upper or 0) * n_runs / 3600 > CONFIRM_HOURS

    def basis(self) -> str:
        """Where the time estimate comes from, for the message beside it."""
        if self.measured_points:
            return f"from {self.measured_points} points of this model on this machine"
        return "first guess: no run of this model here yet"

    def describe(self) -> str:
        parts = [f"{self.n_points} points x {self.n_prompts} prompts"]
        if self.to_compute is not None and self.to_compute < self.n_points:
            parts[0] += f" ({self.to_compute} to compute, the others stored or shared)"
        if self.n_params:
            size = self.n_params / 1e6
            parts.append(f"{size:.0f}M parameters" if size >= 1 else f"{size:.2f}M parameters")
        if self.memory is not None:
            parts.append(f"peak memory ~{self.memory.total / GiB:.1f} GiB")
        if self.seconds is not None and self.measured_points:
            parts.append(f"~{_duration(self.seconds)} on this machine ({self.basis()})")
        elif self.seconds is not None:
            span = f"{_duration(self.seconds)}-{_duration(self.upper or self.seconds)}"
            parts.append(f"~{span} on this machine ({self.basis()})")
        return ", ".join(parts)


def check_grid(spec: SweepSpec, prompts: Sequence[str], store_root: Path) -> None:
    """Refuse a grid too large to hold or whose answers and prompts could not fit on disk."""
    n_points, n_prompts = n_grid_points(spec), len(prompts)
    if n_points > MAX_GRID_POINTS:
        raise UserError(
            f"this grid has {n_points:,} points, more than the {MAX_GRID_POINTS:,} a run may "
            "hold: use fewer points per axis (the paper uses 21)"
        )
    need = estimate_store_bytes(n_points, prompts, spec.generation.max_new_tokens)
    free = free_disk(store_root)
    if need > free:
        text = sum(len(p.encode()) for p in prompts) / (1 << 20)
        raise UserError(
            f"this grid ({n_points} points x {n_prompts} prompts x "
            f"{spec.generation.max_new_tokens} tokens, and the prompts' {text:.1f} MiB of "
            f"text stored again at every point) could need {need / GiB:.1f} GiB of store but "
            f"{free / GiB:.1f} GiB is free: use fewer points, prompts or tokens, or point "
            "--store at a disk with room"
        )


def preflight(
    spec: SweepSpec,
    store_root: Path,
    cuda: bool | None = None,
    measured: MeasuredPace | None = None,
    to_compute: PointsToCompute | None = None,
) -> Preflight:
    """Check the model files, prompts and grid; estimate memory and time.

    Raises UserError with what to fix. The estimates are rough; the sweep itself makes
    the exact memory check once the model is loaded. The time is this machine's
    ``measured`` pace for the model when it has one, else a range from the constants
    (``plan.pace``), which the guard reads at its high end. ``to_compute`` prices only
    the points not yet stored: a run's landscapes share their origin, runs share points.
    """
    root = model_dir(spec.model)
    prompts = load_prompts(spec.prompts).prompts
    n_prompts = len(prompts)
    check_grid(spec, prompts, store_root)
    copy = bundled_copy(store_root / "models") if spec.model.kind == "bundled" else None
    root = copy or root
    n_params = count_parameters(root)
    memory = seconds = upper = pace = todo = None
    if n_params:
        cuda, free, device = device_memory(spec, cuda)
        config = str(root if root.is_file() else root / "config.json")
        shape = ModelShape.from_config(_config(root), n_params, _weight_bytes(spec, cuda), config)
        lengths = prompt_lengths(spec, prompts, root)
        longest = None
        if lengths is not None:
            longest = check_context(lengths, prompts, shape.context, spec.generation)
        disk = free_disk(store_root)
        try:
            memory = plan_memory(
                spec, shape, free=free, disk_free=disk, cuda=cuda, prompt_tokens=longest
            ).estimate
        except UserError as exc:
            raise UserError(f"{device}: {exc}") from None
        device_name = "cuda" if cuda else "cpu"
        pace = measured(device_name) if measured is not None else None
        todo = to_compute(device_name) if to_compute is not None else None
        n_points = n_grid_points(spec) if todo is None else todo
        seconds, upper = _seconds(spec, n_points, n_prompts, n_params, cuda, pace)
        if spec.model.kind == "bundled" and copy is None:
            seconds, upper = seconds + CONVERT_S, upper + CONVERT_S
    return Preflight(
        n_grid_points(spec),
        n_prompts,
        n_params,
        memory,
        seconds,
        prompts[:PREVIEW_PROMPTS],
        upper,
        pace.n_points if pace else 0,
        todo,
    )


def _seconds(
    spec: SweepSpec,
    n_points: int,
    n_prompts: int,
    n_params: int,
    cuda: bool,
    pace: Throughput | None,
) -> tuple[float, float]:
    """The run's time (low, high): from the measured pace, else the constants' range.

    A measured pace is seconds per slot over this machine's recent points of the model,
    overheads and early stops included, so it needs no per-point term of its own.
    """
    slots = n_points * n_prompts * spec.generation.max_new_tokens
    coherence = 0.0
    if spec.measure in ANSWER_MEASURES and spec.runtime.coherence:
        per_answer = coherence_per_answer(n_params, pace.per_slot if pace else None, pace)
        coherence = n_points * n_prompts * per_answer
    if pace is not None:
        seconds = LOAD_S + slots * pace.per_slot + coherence
        return seconds, seconds
    seconds = LOAD_S + n_points * POINT_OVERHEAD_S + slots * assumed_per_slot(n_params, cuda)
    seconds += coherence
    return seconds, seconds * FIRST_GUESS_FACTOR


def count_parameters(root: Path) -> int | None:
    """Parameters in a safetensors directory (from headers) or a GGUF file."""
    if root.is_file():
        return read_gguf(root).n_params
    total = 0
    for path in root.glob("*.safetensors"):
        total += _safetensors_parameters(path)
    return total or None


MAX_HEADER_BYTES = 100 << 20  # safetensors caps its JSON header at 100 MB too


def _safetensors_parameters(path: Path) -> int:
    """Parameters in one safetensors file, read from its header; a bad file is a UserError."""
    bad = f"{path} is not a valid safetensors file"
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise UserError(f"{bad}: it is only {size} bytes")
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise UserError(f"{bad}: its header claims {length:,} bytes")
            header = json.loads(fh.read(length))
        header.pop("__metadata__", None)
        return sum(math.prod(t["shape"]) for t in header.values())
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise UserError(f"{bad} ({str(exc)[:200]}); re-save it with save_pretrained") from None


def _config(root: Path) -> dict:
    """The model's ``config.json`` as a dict, or a GGUF file's sizes in its terms."""
    if root.is_file():
        return read_gguf(root).config
    path = root / "config.json"
    if not path.is_file():
        return {}
    try:
        text = path.read_text()
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read ({exc}); re-save the model") from None
    config = parse_json(text, str(path), "re-save the model")
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a JSON object; re-save the model")
    return config


def device_memory(spec: SweepSpec, cuda: bool | None) -> tuple[bool, int | None, str]:
    """Whether the sweep runs on CUDA, the memory it may use there (None: unknown), where.

    ``cuda`` None decides as ``device: auto`` will: CUDA when nvidia-smi sees a GPU.
    On CUDA the budget is the GPU's free memory, so a spec that cannot fit is refused
    here, with the numbers, instead of running out of memory after the model loads.
    """
    if spec.model.device == "cpu" or cuda is False:
        return False, available_memory(), "host memory"
    gpu = visible_gpu()
    if gpu is not None:
        where = f"GPU {gpu.name} ({gpu.free / GiB:.1f} of {gpu.total / GiB:.1f} GiB free)"
        return True, gpu.free, where
    if cuda or spec.model.device == "cuda":
        return True, None, "GPU"  # its memory is unknown here: the engine checks at load
    return False, available_memory(), "host memory"


def _weight_bytes(spec: SweepSpec, cuda: bool = False) -> int:
    """Bytes per weight as loaded."""
    return 4 if resolve_dtype(spec.model, "cuda" if cuda else "cpu") == "float32" else 2


def _duration(seconds: float) -> str:
    """An upper bound in words: rounded up, so "at most" stays true."""
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 5400:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 360) / 10:.1f} h"
