"""Set a model's weights to ``base + alpha*d1 + beta*d2``, and restore them exactly.

Weights are always written from absolute coordinates, never stepped (``+=`` drifts),
and the one base copy is written back bit for bit on exit, whatever the exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from landscape_core.engine.directions import Directions
from landscape_core.engine.spill import TensorFile
from landscape_core.errors import NonFiniteError, UserError
from landscape_core.spec.config import quantised_refusal

QUANTISED_DTYPES = (torch.int8, torch.uint8)


def unique_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Named parameters, each tied tensor once, so perturbing it keeps the tie."""
    return dict(model.named_parameters(remove_duplicate=True))


def is_quantised(model: torch.nn.Module) -> bool:
    """Whether any weight is stored as integers (bitsandbytes' 8-bit and 4-bit loading)."""
    return any(p.dtype in QUANTISED_DTYPES for p in unique_parameters(model).values())


def host_copy(t: torch.Tensor) -> torch.Tensor:
    """A host-memory copy of ``t``, pinned (page-locked) when ``t`` is on a GPU.

    Pinned memory copies to the device by DMA at full link speed and lets the
    ``non_blocking`` copies in ``Perturber.set`` overlap; pageable memory would be
    staged through a bounce buffer first. If the OS refuses to lock that much, the
    copy stays pageable: slower, still exact.
    """
    if t.device.type == "cuda":
        try:
            return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t)
        except RuntimeError:
            pass
    return t.to("cpu", copy=True)


def snapshot(
    model: torch.nn.Module, directory: Path | None = None, host: bool = False
) -> Mapping[str, torch.Tensor]:
    """The one base copy of every unique parameter.

    With ``directory`` the copy is a ``TensorFile`` there (CPU: one model-size less
    RAM); with ``host`` a clone in host memory, pinned for CUDA weights (a GPU short
    of memory); else a clone on the weights' device.
    """
    params = unique_parameters(model)
    if is_quantised(model):
        raise UserError(quantised_refusal("8bit/4bit"))
    if directory is not None:
        spilled = TensorFile(directory)
        for name, p in params.items():
            spilled.append(name, p)
        return spilled
    if host:
        return {name: host_copy(p.detach()) for name, p in params.items()}
    return {name: p.detach().clone() for name, p in params.items()}


class Perturber:
    """Moves a model's weights inside a ``with`` block and restores them on exit.

    Inside, ``set(alpha, beta)`` writes the weights; on exit they return to the base
    exactly, after an error or a Ctrl-C too. An interpolation axis is written as
    ``lerp(base, target, alpha)``, so alpha = 1 is the target bit for bit.

    ``directions.items()`` yields ``(name, d1, d2)`` float32 tensors. Names and shapes
    are checked against the model before any weight is touched.
    """

    def __init__(
        self, model: torch.nn.Module, base: Mapping[str, torch.Tensor], directions: Directions
    ) -> None:
        self.params = unique_parameters(model)
        self.base = base
        self.directions = directions
        missing = set(self.params) ^ set(base)
        if missing:
            raise ValueError(f"base copy and model disagree on tensors: {sorted(missing)[:5]}")
        for name in directions.names():
            if self.params[name].shape != base[name].shape:
                raise ValueError(f"{name}: shape {tuple(base[name].shape)} changed")

    def __enter__(self) -> Perturber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    @torch.no_grad()
    def set(self, alpha: float, beta: float = 0.0) -> None:
        """Write ``base + alpha*d1 + beta*d2`` into every unique parameter."""
        for name, d1, d2 in self.directions.items():
            p = self.params[name]
            end = self.directions.target(name)  # interpolation: exact at alpha = 0 and 1
            if isinstance(self.base, TensorFile):
                self.base.read_into(name, p.data)  # then the same ops, in place
                base = p.data
            else:  # on the weight's device, or in host memory when the device is short
                base = self.base[name].to(p.device, non_blocking=True)
            if p.dtype == torch.float32:
                if end is None:
                    torch.add(base, d1, alpha=alpha, out=p.data)
                else:
                    torch.lerp(base, end, alpha, out=p.data)
                if d2 is not None and beta != 0.0:
                    p.data.add_(d2, alpha=beta)
            else:  # half precision: sum in float32, round once
                base32 = base.float()
                value = (
                    base32.add(d1, alpha=alpha) if end is None else torch.lerp(base32, end, alpha)
                )
                if d2 is not None and beta != 0.0:
                    value.add_(d2, alpha=beta)
                p.data.copy_(value)

    @torch.no_grad()
    def restore(self) -> None:
        for name, p in self.params.items():
            if isinstance(self.base, TensorFile):
                self.base.read_into(name, p.data)
            else:
                p.data.copy_(self.base[name])

    @torch.no_grad()
    def check_finite(self) -> None:
        """Raise NonFiniteError naming the first tensor with NaN or Inf."""
        for name, p in self.params.items():
            if not torch.isfinite(p).all():
                raise NonFiniteError(f"non-finite weights in {name}")


class FixedWeights(Perturber):
    """The perturber of a quantised model: theta_0 only, so nothing to copy or restore.

    8-bit and 4-bit weights may generate (``SweepSpec`` allows a grid only at 0);
    any other point is refused, here too, with the spec's message.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = unique_parameters(model)

    @torch.no_grad()
    def set(self, alpha: float, beta: float = 0.0) -> None:
        if alpha != 0.0 or beta != 0.0:
            raise UserError(quantised_refusal("8bit/4bit"))

    def restore(self) -> None:
        """The weights never moved."""
