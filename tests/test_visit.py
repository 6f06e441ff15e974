"""Visiting order: the model first, coarse to fine, the basin's edge first."""

from dataclasses import dataclass

from landscape_core import sweep
from landscape_core.basin.visit import levels, order
from landscape_core.engine import perturb


@dataclass
class C:
    i: int
    j: int = 0


def test_levels_bisect_from_the_centre():
    assert levels(1) == [0]
    assert levels(5) == [1, 2, 0, 2, 1]
    lv = levels(21)
    assert lv[10] == 0 and lv[0] == lv[20] == 1 and lv[5] == lv[15] == 2
    assert sorted(set(lv)) == list(range(max(lv) + 1))  # every index gets a level


def test_the_edge_between_different_neighbours_goes_first():
    known = {0: 100.0, 4: 0.0, 8: 0.0}  # the left end is unsafe, the rest is basin
    cells = [C(i) for i in range(9) if i not in known]
    pick = order(cells, (9, 1), lambda i, j: known.get(i))
    assert pick().i == 2  # between 100 and 0, before 6 (between 0 and 0)


def test_order_takes_every_cell_once():
    cells = [C(i, j) for j in range(3) for i in range(5)]
    pick = order(cells, (5, 3), lambda i, j: None)
    seen = []
    while (c := pick()) is not None:
        seen.append((c.i, c.j))
    assert sorted(seen) == sorted((c.i, c.j) for c in cells)
    assert seen[0] == (2, 1)  # the centre: the model itself


def test_a_sweep_starts_at_the_model_and_refines(tiny_spec, store, monkeypatch):
    visited = []
    real_set = perturb.Perturber.set

    def spy(self, alpha, beta=0.0):
        visited.append(alpha)
        return real_set(self, alpha, beta)

    monkeypatch.setattr(perturb.Perturber, "set", spy)
    summary = sweep.run(tiny_spec(grid=[{"start": -1.0, "stop": 1.0, "num": 5}]), store)
    assert summary.computed == 5
    assert visited[0] == 0.0 and sorted(visited[1:3]) == [-1.0, 1.0]


def test_extending_a_grid_from_11_to_21_points_computes_only_the_10_new(tiny_spec, store):
    assert (
        sweep.run(tiny_spec(grid=[{"start": -1.0, "stop": 1.0, "num": 11}]), store).computed == 11
    )
    wider = sweep.run(tiny_spec(grid=[{"start": -1.0, "stop": 1.0, "num": 21}]), store)
    assert wider.computed == 10
