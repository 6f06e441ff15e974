"""Set a model's weights to ``base + alpha*d1 + beta*d2``, and restore them exactly.

Weights are always written from absolute coordinates, never stepped (``+=`` drifts),
and the one base copy is written back bit for bit on exit, whatever the exit.
"""

from __future__ import annotations

from typing import Any

import torch

from landscape_core.errors import NonFiniteError, UserError

QUANTISED_DTYPES = (torch.int8, torch.uint8)


def unique_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    """Named parameters, each tied tensor once, so perturbing it keeps the tie."""
    return dict(model.named_parameters(remove_duplicate=True))


def snapshot(model: Any) -> dict[str, torch.Tensor]:
    """The one base copy: a clone of every unique parameter, on its device."""
    params = unique_parameters(model)
    bad = [n for n, p in params.items() if p.dtype in QUANTISED_DTYPES]
    if bad:
        raise UserError(
            "quantised (8/4-bit) weights cannot be perturbed directly; load the model with "
            "quantization: none in bfloat16 or float16 to sweep it"
        )
    return {name: p.detach().clone() for name, p in params.items()}


class Perturber:
    """Moves a model's weights inside a ``with`` block and restores them on exit.

    Inside, ``set(alpha, beta)`` writes the weights; on exit they return to the base
    exactly, after an error or a Ctrl-C too. An interpolation axis is written as
    ``lerp(base, target, alpha)``, so alpha = 1 is the target bit for bit.

    ``directions.items()`` yields ``(name, d1, d2)`` float32 tensors. Names and shapes
    are checked against the model before any weight is touched.
    """

    def __init__(self, model: Any, base: dict[str, torch.Tensor], directions: Any) -> None:
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
            p, base = self.params[name], self.base[name]
            end = self.directions.target(name)  # interpolation: exact at alpha = 0 and 1
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
            p.data.copy_(self.base[name])

    @torch.no_grad()
    def check_finite(self) -> None:
        """Raise NonFiniteError naming the first tensor with NaN or Inf."""
        for name, p in self.params.items():
            if not torch.isfinite(p).all():
                raise NonFiniteError(f"non-finite weights in {name}")
