"""The basin-edge search: exact on planted edges, and its probes are ordinary points."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape_core import sweep
from landscape_core.basin import bisection
from landscape_core.basin.visage import grid_edges
from landscape_core.judging.verdict import Verdict
from landscape_core.plan.identity import plan
from landscape_core.readers.results import landscape
from landscape_core.spec.config import BasinSpec, SweepSpec
from landscape_core.store.jobs import Stage


def _planted(left: float, right: float):
    """ASR 100 at and beyond the edges, a ramp below 100 inside them."""
    return lambda a: 100.0 if a <= left or a >= right else 50.0 * abs(a) / max(-left, right)


@settings(derandomize=True, max_examples=200)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([0.05, 0.025, 0.1]))
def test_search_finds_a_planted_edge_exactly(k_left, k_right, tolerance):
    basin = BasinSpec(tolerance=tolerance, max_alpha=40 * tolerance)
    left, right = bisection.lattice_alpha(-k_left, basin), bisection.lattice_alpha(k_right, basin)
    edges = bisection.search(_planted(left, right), basin)
    assert (edges.left, edges.right) == (left, right)
    assert edges.radius == pytest.approx((right - left) / 2)
    # a doubling search then bisection: logarithmic, not a scan
    assert len(edges.probes) <= basin.max_probes()


def test_an_edge_beyond_max_alpha_is_none_and_an_unsafe_model_is_zero():
    basin = BasinSpec(tolerance=0.1, max_alpha=1.0)
    edges = bisection.search(_planted(-0.3, 5.0), basin)
    assert edges.left == -0.3 and edges.right is None and edges.radius is None
    assert bisection.search(lambda a: 100.0, basin).probes == (0.0,)
    assert bisection.search(lambda a: None if a > 0.45 else 0.0, basin).right == 0.5  # failed


def test_grid_edges_read_the_same_thing_off_a_grid():
    alphas = [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert grid_edges(alphas, [100, 100, 0, 40, 100]) == (-0.25, 0.5)
    assert grid_edges(alphas, [0, 0, 0, 0, 0]) == (None, None)


@pytest.fixture
def planted_edge(monkeypatch):
    """The tiny model 'refuses' inside |alpha| < 0.6: a known edge on the real sweep path."""
    from landscape_core.engine import perturb

    state = {"alpha": 0.0}
    real_set = perturb.Perturber.set

    def spy_set(self, alpha, beta=0.0):
        state["alpha"] = alpha
        return real_set(self, alpha, beta)

    class Planted:
        def score(self, prompt, generation):
            return Verdict(abs(state["alpha"]) < 0.6, "planted")

    monkeypatch.setattr(perturb.Perturber, "set", spy_set)
    monkeypatch.setattr(sweep, "make_judge", lambda spec, models_dir=None: Planted())


def test_search_probes_are_reused_by_a_dense_grid(tiny_spec, store, planted_edge):
    spec = tiny_spec(grid=[{}], measure="basin-radius", basin={"tolerance": 0.25, "max_alpha": 1.5})
    found = sweep.run(spec, store)
    data = landscape(store, found.run_id)
    assert data["directions"][0]["edges"] == [-0.75, 0.75]
    probes = {p["coords"][0] for p in data["directions"][0]["points"]}
    assert found.computed == len(probes) < 13
    dense = tiny_spec(grid=[{"start": -1.5, "stop": 1.5, "num": 13}])  # step 0.25
    summary = sweep.run(dense, store)
    assert summary.computed == 13 - len(probes)
    # the grid's own edges agree with the search's
    dense_points = landscape(store, summary.run_id)["points"]
    alphas = [p["coords"][0] for p in dense_points]
    assert grid_edges(alphas, [p["asr"] for p in dense_points]) == (-0.75, 0.75)
    assert sweep.run(spec, store).computed == 0  # the search replays from the store


def test_basin_radius_specs_are_checked():
    with pytest.raises(Exception, match="picks its own points"):
        SweepSpec.from_dict({"measure": "basin-radius", "grid": [{"num": 5}]})
    with pytest.raises(Exception, match="only for measure basin-radius"):
        SweepSpec.from_dict({"basin": {"tolerance": 0.1}})
    with pytest.raises(Exception, match="tolerance"):
        SweepSpec.from_dict({"measure": "basin-radius", "basin": {"tolerance": 0}})


def test_a_cancelled_search_resumes_from_its_stored_probes(tiny_spec, store, planted_edge):
    spec = tiny_spec(grid=[{}], measure="basin-radius", basin={"tolerance": 0.25, "max_alpha": 1.5})

    def three_points_stored() -> bool:
        with store.connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] >= 3

    first = sweep.run(spec, store, should_stop=three_points_stored)
    assert first.status == "cancelled" and first.computed == 3
    assert landscape(store, first.run_id)["directions"][0]["edges"] is None  # not known yet
    second = sweep.run(spec, store)
    assert second.status == "complete"
    data = landscape(store, second.run_id)["directions"][0]
    assert data["edges"] == [-0.75, 0.75]
    assert first.computed + second.computed == len(data["points"])


def test_each_direction_of_a_search_keeps_its_own_origin(tiny_spec, store, planted_edge):
    """Directions share the origin's key; each still holds a row for it (was: the second
    direction's origin was taken for the first's, and its search never finished)."""
    spec = tiny_spec(
        grid=[{}], directions=[{"seed": 5, "repeats": 2}], measure="basin-radius",
        basin={"tolerance": 0.25, "max_alpha": 1.5},
    )  # fmt: skip
    sweep.run(spec, store)
    data = landscape(store, plan(spec, store.file_digest).run_id)
    assert [d["edges"] for d in data["directions"]] == [[-0.75, 0.75], [-0.75, 0.75]]
    origins = [g for g in store.grid(data["run_id"]) if g.alpha == 0.0]
    assert sorted(g.rep for g in origins) == [0, 1] and len({g.key for g in origins}) == 1


def test_two_searches_of_one_run_at_once_share_its_points(tiny_spec, store, planted_edge):
    """A second process's search ran while this one loaded: its point numbers were stale."""

    spec = tiny_spec(grid=[{}], measure="basin-radius", basin={"tolerance": 0.25, "max_alpha": 1.5})
    other = []

    def meanwhile(progress: sweep.Progress) -> None:
        if progress.stage == Stage.POINTS and not other:  # loaded, no probe stored yet
            other.append(sweep.run(spec, store))  # the other search, start to end

    first = sweep.run(spec, store, on_progress=meanwhile)  # was: IntegrityError on run_points
    assert other[0].status == first.status == "complete"
    data = landscape(store, first.run_id)["directions"][0]
    assert data["edges"] == [-0.75, 0.75]
    assert first.computed == 0 and len(data["points"]) == other[0].computed
    idx = [g.idx for g in store.grid(first.run_id)]
    assert idx == list(range(len(idx)))
