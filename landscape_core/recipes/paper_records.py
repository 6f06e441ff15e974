"""The paper miniature's records: an experiment, the experiments by section, the sizes.

Running the paper (``paper``) builds them and writing it up (``paper_render``) reads
them; both import them from here, so neither imports the other's module (no cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from landscape_core.readers.results import at_origin, with_states
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store


@dataclass
class Experiment:
    """One stored sweep, with where it appears in the report."""

    name: str
    spec: SweepSpec
    run_id: str = ""

    def points(self, store: Store, judge: str = "keyword") -> pd.DataFrame:
        """Points with ``judge``'s ASR (the paper's keyword) and the states' shares."""
        return with_states(store, self.run_id, store.points_frame(self.run_id, judge), judge)

    def origin_asr(self, store: Store) -> float | None:
        origin = at_origin(self.points(store))
        return None if origin.empty else origin.asr.iloc[0]


@dataclass(frozen=True)
class Sizes:
    """The settings the report states in words (read when the paper runs, not imported)."""

    seeds: tuple[int, ...]  # the random directions of Fig. 2(b), Tables 1 and 2
    random_grid: list[dict[str, Any]]  # the dense 1D grid
    interpolation_grid: list[dict[str, Any]]  # Fig. 1(B)'s axis
    basin: dict[str, float]  # the bisection's tolerance and max_alpha
    second_judge: str  # Tables 1 and 2 show its VISAGE beside the keyword's
    replica_directions: int  # the directions each training seed of Table 1 is swept along
    defence_goals: dict[str, Any]  # section 6's held-out goals (a prompt set)
    fine_grid: list[dict[str, Any]]  # basin or breakage again, near the aligned demo's edges
    checkpoint_prompts: dict[str, Any]  # what section 7 evaluates each checkpoint on

    @property
    def grid_step(self) -> float:
        """The dense grid's alpha step: how finely an edge read off it is known."""
        return _step(self.random_grid[0])

    @property
    def grid_reach(self) -> float:
        """The dense grid's largest |alpha|: an edge past it reads "beyond" there."""
        axis = self.random_grid[0]
        return max(abs(axis["start"]), abs(axis["stop"]))

    @property
    def fine_step(self) -> float:
        """The finer grid's step, near the edges."""
        return _step(self.fine_grid[0])


def _step(axis: dict[str, Any]) -> float:
    return (axis["stop"] - axis["start"]) / (axis["num"] - 1)


@dataclass
class Paper:
    """Every experiment of the miniature, by the section that reports it."""

    seeds: list[Experiment]
    table1: dict[str, tuple[Experiment, Experiment]]
    # Table 1's finetunes trained with the other seeds: "harmful 10-shot, training seed 1"
    replicas: dict[str, tuple[Experiment, Experiment]]
    # each Table 1 model along its first directions (Table 1's points): its fluency, the
    # basin-or-breakage answer, is measured along these
    breakage: dict[str, Experiment]
    refined: dict[str, Experiment]  # the same, near a model's edges on ``sizes.fine_grid``
    table2: dict[str, Experiment]
    interpolations: dict[str, Experiment]
    search: Experiment
    jailbreaks: dict[str, Experiment]  # section 6: one landscape per template
    sizes: Sizes  # what the report states about them

    def all(self) -> list[Experiment]:
        """In the order they run: the aligned demo's, Table 1's, replicas, section 6's."""
        return [*self.seeds, *self.table2.values(), self.search,
                *(e for pair in self.table1.values() for e in pair),
                *self.interpolations.values(), *self.breakage.values(),
                *self.refined.values(),
                *(e for pair in self.replicas.values() for e in pair),
                *self.jailbreaks.values()]  # fmt: skip
