"""Directions in weight space, rebuilt per tensor from their specs, never stored.

A random direction's tensor ``name`` is a Gaussian drawn from a CPU generator seeded
with ``sha256(f"{seed}:{name}")``, so it is the same in every process and on every
device. It is then scaled per ``norm`` and zeroed where ``skip`` patterns match, on
the CPU too, and only then moved to the weights' device (``place``): a CUDA sweep
perturbs along the CPU's tensors bit for bit (for weights of the same dtype; the
point key records the resolved device and dtype, since ``dtype: auto`` is bfloat16
on CUDA and float32 on CPU, and ``layer`` scaling reads the weights' norm).

A gradient direction's tensor is the data's descent direction (``engine.gradient``,
computed once by the session and handed in), scaled and skipped the same way.

In 2D, d2 is made orthogonal to d1 by Gram-Schmidt within each normalisation unit
(a whole tensor for ``layer``/``none``, one output row for ``filter``) and rescaled
to its unit's norm. Orthogonal units make the concatenated vectors orthogonal too,
and every tensor keeps the norm its normalisation gave it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path

import torch
from safetensors import safe_open

from landscape_core.engine.models import load_model
from landscape_core.engine.spill import TensorFile
from landscape_core.errors import UserError
from landscape_core.plan.model_files import adapters, model_dir
from landscape_core.spec.config import DirectionSpec, ModelSpec, TrainingDataSpec

log = logging.getLogger(__name__)

Base = dict[str, torch.Tensor]  # tensor name -> the model's unperturbed weight
BLOCK = 1 << 20  # elements per float64 block when scaling


def tensor_seed(seed: int, name: str) -> int:
    """A stable 63-bit seed for one tensor (not Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def gaussian(seed: int, name: str, shape: torch.Size) -> torch.Tensor:
    """Standard normal float32 tensor for ``(seed, name)``, drawn on the CPU."""
    gen = torch.Generator(device="cpu").manual_seed(tensor_seed(seed, name))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def place(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a tensor drawn on the CPU to the weights' device: the only device-dependent step.

    Every direction is computed on the CPU (draws, scaling, Gram-Schmidt) and moved
    once, so a CUDA session perturbs along the CPU's tensors bit for bit.
    """
    return t.to(device)


def _units(t: torch.Tensor, norm: str) -> torch.Tensor:
    """View as (units, -1): one row per filter for ``filter`` on matrices, else one unit."""
    if norm == "filter" and t.dim() >= 2:
        return t.reshape(t.shape[0], -1)
    return t.reshape(1, -1)


def normalize(d: torch.Tensor, weight: torch.Tensor, norm: str) -> torch.Tensor:
    """Scale ``d`` so each unit's norm equals the weight's (``none``: unchanged).

    ``layer`` is the paper's choice: the whole tensor to ``||weight||_F``. ``filter``
    (Li et al. 2018) does it per output row; 1-D tensors are one unit. Norms and the
    scaling are float64, in blocks, so no float64 copy of a whole tensor is ever held
    (the embedding's would be 226 MB for SmolLM2-135M).
    """
    if norm == "none":
        return d
    du, wu = _units(d, norm), _units(weight, norm)
    f64 = torch.float64
    scale = torch.linalg.vector_norm(wu, dim=1, keepdim=True, dtype=f64) / (
        torch.linalg.vector_norm(du, dim=1, keepdim=True, dtype=f64).clamp_min(1e-30)
    )
    out = torch.empty_like(du)
    if du.shape[0] == 1:  # one unit: blocks of columns
        for a in range(0, du.shape[1], BLOCK):
            out[:, a : a + BLOCK] = (du[:, a : a + BLOCK].double() * scale).float()
    else:  # blocks of units
        step = max(1, BLOCK // du.shape[1])
        for a in range(0, du.shape[0], step):
            out[a : a + step] = (du[a : a + step].double() * scale[a : a + step]).float()
    return out.reshape(d.shape)


def orthogonalize(d2: torch.Tensor, d1: torch.Tensor, norm: str) -> torch.Tensor:
    """Remove d1's component from d2 per unit, keeping each unit's norm (float64 maths)."""
    u1, u2 = _units(d1, norm).double(), _units(d2, norm).double()
    target = u2.norm(dim=1, keepdim=True)
    d1_sq = (u1 * u1).sum(dim=1, keepdim=True)
    coef = torch.where(d1_sq > 0, (u1 * u2).sum(dim=1, keepdim=True) / d1_sq, 0.0)
    u2 = u2 - coef * u1
    u2 = u2 * (target / u2.norm(dim=1, keepdim=True).clamp_min(1e-30))
    return u2.reshape(d2.shape).float()


def skipped(name: str, skip: tuple[str, ...]) -> bool:
    return any(pattern in name for pattern in skip)


class TargetWeights:
    """Tensors of an interpolation target.

    A plain safetensors directory is read one tensor at a time; a target that needs
    merging (the aligned demo, a finetuned adapter) or a GGUF is loaded once on the CPU.
    """

    def __init__(self, spec: ModelSpec, models_dir: Path) -> None:
        self.source = spec.display_name
        root = None if spec.kind == "bundled" or adapters(spec) else model_dir(spec)
        if root is None or root.is_file():
            cpu = dataclasses.replace(spec, device="cpu", dtype="float32")
            state = load_model(cpu, models_dir).model.state_dict()
            self._get = state.get
            return
        handles = {}
        for path in sorted(root.glob("*.safetensors")):
            handle = safe_open(str(path), framework="pt", device="cpu")
            for key in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                handles[key] = handle
        self._get = lambda name: handles[name].get_tensor(name) if name in handles else None

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        t = self._get(name)
        if t is None:
            raise UserError(
                f"interpolation target {self.source} has no tensor {name!r}; "
                "the target must have the same architecture as the model"
            )
        if t.shape != like.shape:
            raise UserError(
                f"interpolation target tensor {name} has shape {tuple(t.shape)}, "
                f"the model's is {tuple(like.shape)}; the architectures differ"
            )
        return t.float()


class Directions:
    """The sweep's one or two directions over the model's tensors.

    Each tensor is computed on demand from the specs and the base weights. With
    ``cache=True`` the float32 tensors are kept after their first use, which saves
    rebuilding them at every grid point (about 3 s for 135M parameters on CPU): in
    memory (one model-size per direction), or with ``spill`` in a ``TensorFile`` in
    that directory, read back per point.
    """

    def __init__(
        self,
        specs: tuple[DirectionSpec, ...],
        base: Base,
        models_dir: Path,
        cache: bool = False,
        spill: Path | None = None,
        gradients: Mapping[TrainingDataSpec, Base] | None = None,
    ) -> None:
        self.specs = specs
        self.base = base
        self.cache = cache
        self.gradients = gradients or {}
        for spec in specs:
            if spec.kind == "gradient" and spec.data not in self.gradients:
                raise ValueError(f"no gradient computed for {spec.data}")
        self._cached: MutableMapping[str, torch.Tensor] = (
            TensorFile(spill) if cache and spill is not None else {}
        )
        d1 = specs[0]
        self._target = TargetWeights(d1.target, models_dir) if d1.kind == "interpolation" else None

    @property
    def ndim(self) -> int:
        return len(self.specs)

    def names(self) -> list[str]:
        return list(self.base)

    def _one(self, spec: DirectionSpec, name: str, weight: torch.Tensor) -> torch.Tensor:
        if spec.kind == "interpolation":
            return self.target(name).cpu() - weight.float()
        if skipped(name, spec.skip):
            return torch.zeros(weight.shape, dtype=torch.float32)
        if spec.kind == "gradient":
            d = self.gradients[spec.data][name].float().cpu().clone()
        else:
            d = gaussian(spec.seed, name, weight.shape)
        return normalize(d, weight.float().cpu(), spec.norm)

    def target(self, name: str) -> torch.Tensor | None:
        """The interpolation target's tensor (float32, on the weight's device), or None.

        ``Perturber`` sets interpolated weights with ``lerp(base, target, alpha)``, which
        is exact at alpha = 0 and 1, where ``base + alpha * (target - base)`` is not.
        """
        if self._target is None:
            return None
        hit = self._cached.get(f"{name}#target")
        if hit is None:
            hit = self._target.get(name, self.base[name])
            if self.cache:
                self._store(f"{name}#target", hit)
        return place(hit, self._device(name))

    def _device(self, name: str) -> torch.device:
        """The weight's device, without reading a spilled base tensor back."""
        if isinstance(self.base, TensorFile):
            return torch.device("cpu")
        return self.base[name].device

    def _store(self, key: str, tensor: torch.Tensor) -> None:
        if isinstance(self._cached, TensorFile):
            self._cached.append(key, tensor)
        else:
            self._cached[key] = tensor

    def tensor(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(d1, d2 or None) for one tensor, float32 on the weight's device."""
        device = self._device(name)
        d1 = self._cached.get(f"{name}#d1")
        if d1 is not None:
            d2 = self._cached.get(f"{name}#d2")
            return place(d1, device), None if d2 is None else place(d2, device)
        cpu_weight = self.base[name].float().cpu()
        d1 = self._one(self.specs[0], name, cpu_weight)
        d2 = None
        if self.ndim == 2:
            spec2 = self.specs[1]
            d2 = self._one(spec2, name, cpu_weight)
            d2 = orthogonalize(d2, d1, spec2.norm)
        pair = (place(d1, device), None if d2 is None else place(d2, device))
        if self.cache:
            self._store(f"{name}#d1", pair[0])
            if pair[1] is not None:
                self._store(f"{name}#d2", pair[1])
        return pair

    def items(self) -> Iterator[tuple[str, torch.Tensor, torch.Tensor | None]]:
        for name in self.base:
            d1, d2 = self.tensor(name)
            yield name, d1, d2

    def cosine(self) -> float | None:
        """Measured cos(d1, d2) over all tensors (float64 sums); None in 1D."""
        if self.ndim == 1:
            return None
        dot = n1 = n2 = 0.0
        for _, d1, d2 in self.items():
            a, b = d1.double(), d2.double()  # type: ignore[union-attr]
            dot += float((a * b).sum())
            n1 += float((a * a).sum())
            n2 += float((b * b).sum())
        if n1 == 0 or n2 == 0:
            raise UserError("a direction is zero everywhere: check `skip` patterns and the target")
        return dot / (n1**0.5 * n2**0.5)
