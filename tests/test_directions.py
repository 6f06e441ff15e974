"""Many random directions in one run, with an interval over them (tests/test_intervals.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from landscape_core import sweep
from landscape_core.basin import intervals
from landscape_core.errors import UserError
from landscape_core.plan.identity import n_grid_points, plan
from landscape_core.readers.results import (
    compare_visage,
    landscape,
    prompt_matrix,
    visage_interval,
    with_states,
)
from landscape_core.spec.config import SweepSpec


def test_seeds_and_repeats_name_the_same_landscapes():
    by_seeds = SweepSpec.from_dict({"directions": [{"seeds": [3, 4, 5]}]})
    by_repeats = SweepSpec.from_dict({"directions": [{"seed": 3, "repeats": 3}]})
    assert by_seeds.replicates() == by_repeats.replicates()
    assert [r[0].seed for r in by_seeds.replicates()] == [3, 4, 5]
    assert n_grid_points(by_seeds) == 3 * 21


def test_a_single_seed_spec_keeps_its_run_id():
    """seeds/repeats at their defaults leave every stored key as it was."""
    spec = SweepSpec.from_dict({"directions": [{"seed": 123}]})
    assert "seeds" not in spec.key_dict()["directions"][0]
    assert "repeats" not in spec.key_dict()["directions"][0]


@pytest.mark.parametrize(
    "directions, message",
    [
        ([{"seeds": [1, 1]}], "distinct"),
        ([{"seeds": [1, 2], "repeats": 2}], "not both"),
        ([{"seed": 5, "seeds": [1, 2]}], "not both"),
        ([{"repeats": 0}], "repeats"),
        ([{"seeds": [1, 2]}, {"seeds": [3, 4, 5]}], "same number of seeds"),
        ([{"seeds": [1, 2]}, {"seeds": [1, 3]}], "different seeds"),
    ],
)
def test_bad_seed_lists_are_refused(directions, message):
    grid = [{"num": 3}] * len(directions)
    with pytest.raises(UserError, match=message):
        SweepSpec.from_dict({"directions": directions, "grid": grid})


def test_2d_seed_lists_are_zipped():
    spec = SweepSpec.from_dict(
        {"directions": [{"seeds": [1, 2]}, {"seed": 9}], "grid": [{"num": 3}, {"num": 3}]}
    )
    assert [(a.seed, b.seed) for a, b in spec.replicates()] == [(1, 9), (2, 9)]


def test_a_multi_seed_run_reuses_each_seeds_single_direction_points(tiny_spec, store):
    single = sweep.run(tiny_spec(directions=[{"seed": 8}]), store)
    assert single.computed == 3
    many = sweep.run(tiny_spec(directions=[{"seeds": [7, 8]}]), store)
    # seed 8's three points are stored; seed 7 shares the origin: two are new
    assert many.computed == 2 and many.total == 6
    data = landscape(store, many.run_id)
    assert [d["seed"] for d in data["directions"]] == [[7], [8]]
    alone = landscape(store, single.run_id)
    assert data["directions"][1]["points"] == alone["points"]
    assert data["directions"][1]["visage"] == alone["visage"]
    assert {p["direction"] for p in data["points"]} == {0, 1}
    scores = [d["visage"] for d in data["directions"]]
    assert data["visage"] == pytest.approx(np.mean(scores))
    interval = intervals.mean_interval(scores)
    expected = None if interval.low is None else [interval.low, interval.high]
    assert data["visage_ci"] == expected
    assert all(d["edges"] is not None for d in data["directions"])
    # a rerun computes nothing, and the run id is the spec's
    again = sweep.run(tiny_spec(directions=[{"seeds": [7, 8]}]), store)
    assert again.computed == 0
    assert again.run_id == plan(tiny_spec(directions=[{"seeds": [7, 8]}])).run_id


def _points(asr_by_seed: list[list[float]]) -> pd.DataFrame:
    rows = [
        {"rep": rep, "i": i, "j": 0, "alpha": (i - 1) * 0.5, "beta": 0.0, "asr": asr}
        for rep, curve in enumerate(asr_by_seed)
        for i, asr in enumerate(curve)
    ]
    return pd.DataFrame(rows)


def test_runs_on_the_same_seeds_and_prompts_are_compared_paired():
    seeds = {"directions": [{"seeds": [1, 2, 3, 4, 5]}], "grid": [{"num": 3}]}
    spec = SweepSpec.from_dict(seeds)
    other_prompt = SweepSpec.from_dict({**seeds, "system_prompt": {"preset": "empty"}})
    # each direction moves both runs alike; B is 5 points less safe along every one
    a = _points([[100, s, 100] for s in (10, 30, 50, 20, 40)])
    shifts = zip((10, 30, 50, 20, 40), (0, 1, -1, 0.5, 0), strict=True)
    b = _points([[100, s + 5 + e, 100] for s, e in shifts])
    assert visage_interval(a).low <= visage_interval(b).high  # the intervals overlap
    paired = compare_visage((a, spec), (b, other_prompt))
    assert paired.paired and paired.verdict == "A higher" and paired.difference.n == 5
    elsewhere = SweepSpec.from_dict({**seeds, "prompts": {"source": "advbench", "start": 40}})
    unpaired = compare_visage((a, spec), (b, elsewhere))
    assert not unpaired.paired and unpaired.verdict == "not shown"
    assert "no difference" not in unpaired.describe()


def test_each_prompts_share_averages_to_each_directions_visage(tiny_spec, store):
    """The crossed interval's matrix: row means are the directions' VISAGE."""

    summary = sweep.run(tiny_spec(directions=[{"seeds": [7, 8]}]), store)
    points = with_states(store, summary.run_id, store.points_frame(summary.run_id), "keyword")
    gens = store.generations_frame(summary.run_id)
    matrix = prompt_matrix(points, gens)
    data = landscape(store, summary.run_id)
    assert matrix.shape == (2, 3)
    assert matrix.mean(axis=1) == pytest.approx([d["visage"] for d in data["directions"]])
    assert data["visage_ci_prompts"] is None  # two directions: no interval
    assert "directions and prompts" in data["ci_prompts_method"]
