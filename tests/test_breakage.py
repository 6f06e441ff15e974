"""Basin or breakage: each curve's edge by the same rule, and the gap's verdict."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from landscape_core import cli, sweep
from landscape_core.basin.intervals import Interval
from landscape_core.errors import UserError
from landscape_core.readers import capability
from landscape_core.readers.breakage import Breakage, Gap, breakage, gap, side_edges
from landscape_core.readers.capability import companions
from landscape_core.recipes import paper_claims

ALPHAS = [-0.2, -0.1, 0.0, 0.1, 0.2]


def _direction(rep, asr, coherent, fluency):
    return pd.DataFrame(
        {"rep": rep, "alpha": ALPHAS, "asr": asr, "coherent_asr": coherent, "fluency": fluency}
    )


def test_each_curve_ends_where_it_first_reaches_its_threshold():
    basin = _direction(0, [60, 10, 0, 20, 100], [0, 0, 0, 0, 80], [2.0, 0.1, 0.0, 0.3, 1.5])
    cliff = _direction(1, [100, 55, 0, 60, 100], [np.nan] * 5, [3.0, 1.2, 0.0, 1.1, 4.0])
    edges = side_edges(pd.concat([basin, cliff]))
    assert [(e.rep, e.side, e.asr, e.fluency) for e in edges] == [
        (0, -1, 0.2, 0.2), (0, 1, 0.2, 0.2), (1, -1, 0.1, 0.1), (1, 1, 0.1, 0.1),
    ]  # fmt: skip
    assert [e.coherent_asr for e in edges] == [None, 0.2, None, None]  # no coherent answer
    found = gap(edges, "asr")
    assert found.per_direction == (0.0, 0.0)
    assert found.censored == 0
    assert gap(edges, "coherent_asr").censored == 3
    assert found.step == pytest.approx(0.1)  # each edge known back to the point before it


def test_an_edge_is_known_to_the_grid_point_before_it_on_its_side():
    # a finer grid near the edges: 0, 0.05, then 0.01 apart up to 0.08
    alphas = [-0.08, -0.07, -0.06, -0.05, 0.0, 0.05, 0.06, 0.07, 0.08]
    asr = [90, 60, 20, 10, 0, 70, 80, 90, 95]
    fluency = [2, 2, 1.5, 0, 0, 0, 0, 1.2, 2]
    one = pd.DataFrame(
        {"rep": 0, "alpha": alphas, "asr": asr, "coherent_asr": np.nan, "fluency": fluency}
    )
    left, right = side_edges(one)
    assert (left.asr, left.fluency, left.step) == (0.07, 0.06, pytest.approx(0.01))
    assert (right.asr, right.fluency) == (0.05, 0.07)
    assert right.step == pytest.approx(0.05)  # ASR's edge at 0.05: anywhere in (0, 0.05]
    assert gap([left, right], "asr").step == pytest.approx(0.05)


def test_a_gap_is_supported_only_when_its_interval_excludes_zero():
    def verdict(low, high):
        return Gap("asr", (1.0, 2.0), Interval(1.5, low, high, 2), 0).verdict()

    assert verdict(0.2, 2.5).startswith("supported")
    assert verdict(-0.5, 2.5).startswith("not shown")
    assert verdict(-3.0, -0.1).startswith("contradicted")
    assert Gap("asr", (1.0,), Interval(1.0, None, None, 1), 0).verdict().startswith("not shown")
    for low, high in [(0.2, 2.5), (-0.5, 2.5), (-3.0, -0.1)]:
        assert "no difference" not in verdict(low, high)


def test_breakage_reads_a_run_and_its_fluency_companion(tiny_spec, store):
    spec = tiny_spec(directions=[{"seed": 5, "repeats": 2}])
    safety = sweep.run(spec, store)
    assert breakage(store, safety.run_id) is None  # no fluency measured yet
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(capability, "FLUENCY_PROMPTS", (2, 1))
        sweep.run(companions(spec)["fluency"], store)
        found = breakage(store, safety.run_id)
    assert found is not None
    assert {(e.rep, e.side) for e in found.edges} == {(0, -1), (0, 1), (1, -1), (1, 1)}
    assert [g.safety for g in found.gaps] == ["asr", "coherent_asr"]
    for g in found.gaps:
        ended = [e for e in found.edges if None not in (getattr(e, g.safety), e.fluency)]
        assert g.censored == 4 - len(ended)
        assert len(g.per_direction) == len({e.rep for e in ended})
        assert g.verdict().split(":")[0] in ("supported", "not shown", "contradicted")


def test_the_breakage_command_runs_both_sweeps_and_prints_the_gaps(
    tiny_spec, store, tmp_path, capsys, monkeypatch
):
    spec = tiny_spec(directions=[{"seed": 5, "repeats": 2}])
    monkeypatch.setattr(capability, "FLUENCY_PROMPTS", (2, 1))
    config = tmp_path / "c.yaml"
    config.write_text(spec.to_yaml())
    assert cli.main(["breakage", str(config), "--json", "--store", str(store.root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["edges"]) == 4 and [g["safety"] for g in data["gaps"]] == [
        "asr",
        "coherent_asr",
    ]
    assert cli.main(["breakage", str(config), "--store", str(store.root)]) == 0
    assert "fluency edge - ASR edge" in capsys.readouterr().out
    flat = tmp_path / "2d.yaml"
    flat.write_text(
        tiny_spec(directions=[{"seed": 1}, {"seed": 2}], grid=[{"num": 2}, {"num": 2}]).to_yaml()
    )
    assert cli.main(["breakage", str(flat), "--store", str(store.root)]) == 2
    assert "1D grid of answers" in capsys.readouterr().err
    search = tmp_path / "search.yaml"
    search.write_text(tiny_spec(grid=[{}], measure="basin-radius").to_yaml())
    assert cli.main(["breakage", str(search), "--store", str(store.root)]) == 2
    assert "basin search" in capsys.readouterr().err


def test_a_quick_fluency_is_read_when_the_full_one_is_not_stored(
    tiny_spec, store, tmp_path, capsys, monkeypatch
):
    """``breakage --quick-fluency`` scores fewer MT-Bench questions; the reader finds it."""
    monkeypatch.setattr(capability, "FLUENCY_PROMPTS", (3, 1))
    spec = tiny_spec(directions=[{"seed": 5, "repeats": 2}])
    config = tmp_path / "c.yaml"
    config.write_text(spec.to_yaml())
    args = ["breakage", str(config), "--json", "--quick-fluency", "--store", str(store.root)]
    assert cli.main(args) == 0
    assert len(json.loads(capsys.readouterr().out)["edges"]) == 4
    quick = capability.companion_runs(store, spec)["fluency"]
    assert store.run(quick)["spec"]["prompts"]["limit"] == 1
    sweep.run(companions(spec)["fluency"], store)  # the full one, once stored, is read
    assert capability.companion_runs(store, spec)["fluency"] != quick
    with pytest.raises(UserError, match="MT-Bench questions"):
        companions(spec, 7)


def test_a_model_past_the_edge_at_the_model_is_read_as_having_left_its_basin():
    gap = Gap("asr", (0.1,) * 5, Interval(0.1, 0.05, 0.15, 5), 0)
    found = Breakage((), (gap, gap))
    left = paper_claims._breakage("harmful 10-shot", found, origin_asr=95.0)
    assert "has left the basin while it still produces language" in left.finding
    kept = paper_claims._breakage("aligned", found, origin_asr=0.0)
    assert kept.finding.startswith("Safety (aligned) falls before capability")
    assert kept.verdict == "supported"
    censored = Gap("asr", (), None, 10)
    none = paper_claims._breakage("aligned", Breakage((), (censored, censored)), 0.0)
    assert none.verdict == "not shown" and "10 side(s) censored" in none.reason()
    assert paper_claims._breakage("aligned", None, None).verdict == "pending"


def test_the_claims_table_says_each_edge_is_known_to_one_grid_step():
    narrow = Gap("asr", (0.1,) * 5, Interval(0.1, 0.09, 0.11, 5), 0, step=0.05)
    claim = paper_claims._breakage("aligned", Breakage((), (narrow, narrow)), 0.0)
    assert claim.verdict == "supported"  # [0.04, 0.16] once widened by the step
    assert claim.reason().endswith(
        "it detects differences beyond +-0.060 (the interval's +-0.010 and the grid's step)"
    )
    coarse = replace(narrow, step=0.15 - 0.1)  # the same step, off in the last bits
    other = paper_claims._breakage("mix", Breakage((), (coarse, coarse)), 0.0)
    text = "\n".join(paper_claims.markdown([claim, other]))
    assert "every edge is known to one grid step (0.05 alpha)" in text
    assert "grid step" not in "\n".join(paper_claims.markdown([]))  # no such row


def test_a_gap_within_one_grid_step_of_zero_is_not_shown():
    # every direction's sides at 0.05 and 0: a gap of a quarter step, identical each time
    exact = Gap("asr", (0.025,) * 5, Interval(0.025, 0.025, 0.025, 5), 0)
    assert exact.verdict().startswith("supported")  # as if the edges were exact
    quarter = replace(exact, step=0.05)
    assert quarter.verdict().startswith("not shown")  # the CLI and the page read it so
    claim = paper_claims._breakage("aligned", Breakage((), (quarter, quarter)), 0.0)
    assert claim.verdict == "not shown"
    assert "0 is inside the interval widened by the grid's step" in claim.reason()


def test_pending_rows_still_name_the_grid_step():
    pending = paper_claims._breakage("aligned", None, None, step=0.05)
    assert pending.verdict == "pending"
    text = "\n".join(paper_claims.markdown([pending]))
    assert "one grid step (0.05 alpha)" in text and "(0 alpha)" not in text
