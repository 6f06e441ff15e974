"""Where a sweep's points are computed: in this process, or on a pool of Ray actors.

The sweep (the driver) plans, picks the next point and writes the store; an executor
only turns points into rows. Both executors run ``measure.compute`` on the same
weights, so a spec gives the same rows wherever it runs. This module is torch-free:
the executors themselves import the engine (``local``) or Ray (``ray_pool``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from landscape_core.measure import ShouldStop
from landscape_core.store.records import GridPoint, PointResult

if TYPE_CHECKING:
    from landscape_core.engine.decoder import Generation

Pick = Callable[[], GridPoint | None]  # the next point to compute; None when none is left
Done = Callable[[GridPoint, PointResult], None]  # the driver stores a finished point


@dataclass(frozen=True)
class SessionInfo:
    """What a loaded model session reports before any point: it decides point keys and provenance.

    A record, not the model: the torch side is ``landscape_core.engine``.
    """

    device: str
    dtype: str
    texts: tuple[str, ...]  # the prompts as the model reads them
    add_special: bool
    provenance: dict[str, Any]  # ``Session.provenance()`` with ``cosine`` (d1, d2)


@dataclass(frozen=True)
class ActorState:
    """One Ray actor as the Jobs page shows it."""

    name: str
    node: str
    pid: int
    state: Literal["loading", "idle", "busy", "stopped", "dead"]
    point: str = ""  # the point it is on, e.g. "alpha=0.25 beta=0"
    done: int = 0  # points it finished
    busy_s: float = 0.0  # seconds spent on them

    @property
    def points_per_minute(self) -> float:
        return 60.0 * self.done / self.busy_s if self.busy_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node": self.node,
            "pid": self.pid,
            "state": self.state,
            "point": self.point,
            "done": self.done,
            "points_per_minute": round(self.points_per_minute, 2),
        }


class Executor(Protocol):
    session_info: SessionInfo

    def use_reference(self, answers: Sequence[str]) -> None:
        """Perplexity sweeps: the unperturbed answers every point scores."""

    def landscape(self, rep: int, pick: Pick, done: Done, should_stop: ShouldStop) -> bool:
        """Compute points of landscape ``rep`` until ``pick`` has none; False if stopped.

        ``done`` is called in the driver once per finished point, never twice.
        """
        ...

    def origin_generations(self) -> list[Generation]:
        """Greedy answers of the unperturbed model."""
        ...

    def answer_nll(self, texts: list[str], answers: list[str]) -> list[tuple[float, int]]:
        """Teacher-forced NLL of answers under the unperturbed model."""
        ...

    def actors(self) -> list[ActorState]:
        """The actors and what each is doing (none for the local executor)."""
        ...

    def close(self) -> None:
        """Restore weights and give back what the executor holds."""
