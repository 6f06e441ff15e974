"""Coordinates of a set of weights on a landscape's plane: theta_0 + alpha*d1 + beta*d2.

A finetune's checkpoints are not on the plane of their landscape; their coordinates
are the least-squares (alpha, beta) that minimise ||theta_t - theta_0 - alpha*d1 -
beta*d2|| over every weight, and the residual is the norm of what is left, the part off
the plane. Sums run tensor by tensor in float64, so no copy of the model is flattened
(two passes: one for the 2x2 system, one for the residual).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from landscape_core.engine.directions import Directions


@dataclass(frozen=True)
class Coordinates:
    alpha: float
    beta: float
    residual: float  # ||off-plane part||, in the weights' units
    distance: float  # ||theta_t - theta_0||

    @property
    def relative_residual(self) -> float:
        """The share of the move that is off the plane (0: exactly on it)."""
        return self.residual / self.distance if self.distance else 0.0


def project(
    directions: Directions,
    base: Mapping[str, torch.Tensor],
    weights: Callable[[str], torch.Tensor],
) -> Coordinates:
    """Least-squares coordinates of ``weights`` (by tensor name) on the plane.

    ``directions`` must be 2D; its d2 is orthogonal to d1 under the run's normalisation,
    but the 2x2 system is solved in full, so nothing relies on it.
    """
    gram = np.zeros((2, 2))
    rhs = np.zeros(2)
    moved = 0.0
    for name, d1, d2 in directions.items():
        assert d2 is not None, "a plane needs two directions"
        delta = (weights(name).double() - base[name].double()).flatten()
        a, b = d1.double().flatten(), d2.double().flatten()
        gram += [[float(a @ a), float(a @ b)], [float(a @ b), float(b @ b)]]
        rhs += [float(a @ delta), float(b @ delta)]
        moved += float(delta @ delta)
    alpha, beta = (float(x) for x in np.linalg.solve(gram, rhs))
    off = 0.0  # a second pass: ||delta||^2 - rhs . x would cancel to noise near the plane
    for name, d1, d2 in directions.items():
        delta = weights(name).double() - base[name].double()
        rest = delta - alpha * d1.double() - beta * d2.double()  # type: ignore[union-attr]
        off += float((rest * rest).sum())
    return Coordinates(alpha, beta, math.sqrt(off), math.sqrt(moved))
