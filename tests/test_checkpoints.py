"""Choosing checkpoints along a finetune (torch-free)."""

from __future__ import annotations

from landscape_core.plan.checkpoints import Checkpoint, evenly


def test_evenly_spaced_checkpoints_span_the_whole_training_by_step():
    def steps(found: list[Checkpoint]) -> list[int]:
        return [c.step for c in found]

    def made(at) -> list[Checkpoint]:  # noqa: ANN001
        return [Checkpoint(s, 0, 0.0, "h") for s in at]

    assert steps(evenly(made([4, 8, 12, 16, 20, 24, 28, 32, 36, 39]), 5)) == [8, 16, 24, 32, 39]
    assert steps(evenly(made(range(3, 22, 3)), 5)) == [3, 9, 12, 18, 21]  # a short finetune
    assert steps(evenly(made([5, 10]), 5)) == [5, 10]  # fewer than asked: each once
    assert steps(evenly(made([2, 6, 8]), 2)) == [2, 8]  # 4 is as near 2 as 6: the earlier
    assert evenly([], 5) == [] and evenly(made([5, 10]), 0) == []
