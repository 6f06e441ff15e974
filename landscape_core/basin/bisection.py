"""Finding the basin's edge along a direction by search instead of a dense grid.

Each side of the model is searched on the lattice alpha = k * tolerance: k = 1, 2,
4, ... outward until a probe is unsafe (or the largest k is reached), then bisection
over k between the last safe and the first unsafe probe. The edge is the smallest
unsafe k found, exact to one tolerance when ASR rises monotonically along the side;
a side whose ASR dips back finds one of its crossings, not always the first. Probes
on the lattice are ordinary points, so a grid whose step is the tolerance reuses them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from landscape_core.plan.identity import round_coord
from landscape_core.spec.config import BasinSpec


@dataclass(frozen=True)
class Edge:
    """One side's search: the edge's lattice index and the indices probed, in order."""

    k: int | None  # smallest unsafe index found; None: safe up to the largest index
    probes: tuple[int, ...]


def find_edge(unsafe: Callable[[int], bool], max_k: int) -> Edge:
    """Search k in 1..max_k for the basin's edge; ``unsafe(k)`` probes one point."""
    probes: list[int] = []

    def probe(k: int) -> bool:
        probes.append(k)
        return unsafe(k)

    safe, k = 0, 1
    hit: int | None = None
    while hit is None and safe < max_k:
        k = min(k, max_k)
        if probe(k):
            hit = k
        else:
            safe, k = k, 2 * k
    if hit is None:
        return Edge(None, tuple(probes))
    while hit - safe > 1:
        mid = (safe + hit) // 2
        if probe(mid):
            hit = mid
        else:
            safe = mid
    return Edge(hit, tuple(probes))


@dataclass(frozen=True)
class Edges:
    """Both edges of one direction's basin, and every alpha the search probed."""

    left: float | None  # alpha (<= 0) of the left edge; None: safe out to -max_alpha
    right: float | None  # alpha (>= 0) of the right edge; None: safe out to max_alpha
    probes: tuple[float, ...]  # the origin first, then each side's probes in order

    @property
    def radius(self) -> float | None:
        """Half the basin's width, (right - left) / 2; None if an edge was not found."""
        if self.left is None or self.right is None:
            return None
        return (self.right - self.left) / 2


def lattice_alpha(k: int, basin: BasinSpec) -> float:
    """The coordinate of lattice index k: k * tolerance, rounded as every coordinate."""
    return round_coord(k * basin.tolerance)


def search(asr_at: Callable[[float], float | None], basin: BasinSpec) -> Edges:
    """Both edges of the basin through the model; ``asr_at(alpha)`` is a point's ASR.

    A point that failed (non-finite weights, ASR None) counts as unsafe: it is outside
    any basin. A model unsafe at its own weights has both edges at 0.
    """
    probes: list[float] = []

    def unsafe(alpha: float) -> bool:
        probes.append(alpha)
        value = asr_at(alpha)
        return value is None or value >= basin.threshold - 1e-9

    if unsafe(0.0):
        return Edges(0.0, 0.0, tuple(probes))
    max_k = basin.max_steps()
    left = find_edge(lambda k: unsafe(lattice_alpha(-k, basin)), max_k).k
    right = find_edge(lambda k: unsafe(lattice_alpha(k, basin)), max_k).k
    return Edges(
        None if left is None else lattice_alpha(-left, basin),
        None if right is None else lattice_alpha(right, basin),
        tuple(probes),
    )
