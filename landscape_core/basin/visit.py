"""The order a sweep visits its grid: coarse to fine, the basin's edge refined first.

Points are set from absolute coordinates, so any order gives the same numbers; this
one makes a half-finished landscape worth looking at. The model (the grid's centre)
comes first, then the ends, then each bisection level of the axes in turn. Within a
level, the points between finished neighbours whose ASR differs most (the basin's
edge) go first. The grid itself never changes: only the order of its points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

ADAPTIVE_LIMIT = 4096  # beyond this many pending points, keep the static level order


class Cell(Protocol):
    i: int
    j: int


def levels(n: int) -> list[int]:
    """Bisection level of each index of an axis of ``n`` points (0 = the centre)."""
    level = [0] * n
    if n == 1:
        return level
    seen = {n // 2}
    frontier = [0, n - 1]
    depth = 1
    intervals = [(0, n // 2), (n // 2, n - 1)]
    while frontier:
        for k in frontier:
            if k not in seen:
                level[k], seen = depth, seen | {k}
        depth += 1
        frontier, nxt = [], []
        for lo, hi in intervals:
            if hi - lo > 1:
                mid = (lo + hi) // 2
                frontier.append(mid)
                nxt += [(lo, mid), (mid, hi)]
        intervals = nxt
    return level


def order(
    pending: Sequence[Cell], shape: tuple[int, int], asr: Callable[[int, int], float | None]
) -> Callable[[], Cell | None]:
    """A picker that returns the next point to compute (None when all are taken).

    ``shape`` is (n_alpha, n_beta); ``asr(i, j)`` is a finished point's ASR or None.
    It is asked again before every pick, so results feed the order as they arrive.
    """
    level_a, level_b = levels(shape[0]), levels(shape[1])
    left = list(pending)
    adaptive = len(left) <= ADAPTIVE_LIMIT

    def edge(cell: Cell) -> float:
        """Largest ASR jump between the nearest finished neighbours around the cell."""
        best = 0.0
        for axis in (0, 1):
            n = shape[axis]
            here = cell.i if axis == 0 else cell.j

            def value(k: int, axis: int = axis) -> float | None:
                return asr(k, cell.j) if axis == 0 else asr(cell.i, k)

            lo = next((v for k in range(here - 1, -1, -1) if (v := value(k)) is not None), None)
            hi = next((v for k in range(here + 1, n) if (v := value(k)) is not None), None)
            if lo is not None and hi is not None:
                best = max(best, abs(hi - lo))
        return best

    def pick() -> Cell | None:
        if not left:
            return None

        def rank(cell: Cell) -> tuple[int, float]:
            level = max(level_a[cell.i], level_b[cell.j])
            return (-level, edge(cell) if adaptive else 0.0)

        best = max(left, key=rank)
        left.remove(best)
        return best

    return pick
