"""Issue 30: the pre-registered test of the risk preflight, on planted rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from landscape_core.readers import figures
from landscape_core.risk import validation
from landscape_core.risk.spec import DEFAULTS, HIGH_FROM, LOW_BELOW


@pytest.fixture(autouse=True)
def _no_committed_post_hoc_files(tmp_path, monkeypatch):
    """Planted rows never meet the committed post hoc files; a test that needs one plants it."""
    monkeypatch.setattr(validation, "ANCHORING", tmp_path / "no-anchoring.csv")
    monkeypatch.setattr(validation, "CHECKPOINT_ASR", tmp_path / "no-checkpoints.csv")


def _rows(scores, asrs, splits, names=None) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame({
        "dataset": names or [f"d{i}" for i in range(n)], "split": splits, "seed": 0,
        "harmful_examples": list(range(n)), "examples": 100, "score": scores,
        "delta": [-s / 10 for s in scores], "kl": "0.01", "initial_loss": 1.0,
        "asr_keyword": asrs, "asr_refusal_v2": asrs, "preflight_seconds": 1.0,
        "finetune_seconds": 2.0,
    })  # fmt: skip


def test_thresholds_are_midpoints_when_the_dev_half_separates():
    dev = _rows([1.0, 3.0, 8.0, 30.0], [2.0, 5.0, 20.0, 90.0], ["dev"] * 4)
    t = validation.fit_thresholds(dev)
    assert t.high_from == pytest.approx(19.0)  # between 8 (ASR 20) and 30 (ASR 90)
    assert t.low_below == pytest.approx(5.5)  # between 3 (ASR 5) and 8 (ASR 20)
    assert "midpoint" in t.how


def test_an_unseparated_dev_half_takes_the_best_balanced_accuracy():
    dev = _rows([1.0, 10.0, 5.0, 30.0], [2.0, 60.0, 70.0, 20.0], ["dev"] * 4)
    t = validation.fit_thresholds(dev)
    assert "balanced accuracy" in t.how
    assert t.high_from == 5.0  # >= 5 catches both broken ones, one false alarm


def test_a_dev_half_of_one_class_keeps_the_a_priori_thresholds():
    t = validation.fit_thresholds(_rows([1.0, 2.0], [0.0, 3.0], ["dev", "dev"]))
    assert (t.low_below, t.high_from) == (LOW_BELOW, HIGH_FROM)
    assert "a priori" in t.how


def test_held_out_outcomes_never_move_the_thresholds():
    scores, splits = [1.0, 3.0, 8.0, 30.0, 2.0, 40.0], ["dev"] * 4 + ["held-out"] * 2
    a = validation.validate(_rows(scores, [2, 5, 20, 90, 0, 100], splits))
    b = validation.validate(_rows(scores, [2, 5, 20, 90, 100, 0], splits))
    assert a.thresholds == b.thresholds
    assert a.held_out[0].auroc == 1.0 and b.held_out[0].auroc == 0.0


def test_auroc_counts_ties_half_and_needs_both_classes():
    values = np.array([1.0, 2.0, 2.0, 3.0])
    assert validation.auroc(values, np.array([False, False, True, True])) == pytest.approx(0.875)
    assert validation.auroc(values, np.array([True] * 4)) is None


def test_rho_is_claimed_only_from_eight_datasets_with_its_interval():
    few = _rows([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ["held-out"] * 3)
    assert validation.correlation(few, "score").rho is None
    scores = list(range(10))
    many = _rows(scores, [s * 10 + 1 for s in scores], ["held-out"] * 10)
    c = validation.correlation(many, "score")
    assert c.rho == pytest.approx(1.0) and c.low == pytest.approx(1.0)
    # raw delta falls as the score rises: its sign makes a falling refusal the risk
    assert validation.correlation(many, "delta").rho == pytest.approx(1.0)
    noisy = _rows(scores, [90, 10, 80, 20, 70, 30, 60, 40, 50, 45], ["held-out"] * 10)
    c = validation.correlation(noisy, "score")
    assert c.low < c.rho < c.high


def test_the_align_control_is_read_with_the_fitted_thresholds():
    names = ["p0", "p1", "align", "k50"]
    frame = _rows([1.0, 30.0, 25.0, 2.0], [2.0, 90.0, 3.0, 60.0], ["dev"] * 4, names)
    v = validation.validate(frame)
    assert v.align_verdict == validation.verdict(25.0, v.thresholds)
    lines = "\n".join(validation.markdown(v))
    assert "| align | dev | 0 |" in lines and "n < 8: not claimed" in lines


def test_the_report_says_what_the_preflights_cost_against_their_finetunes():
    frame = _rows([1.0, 3.0, 8.0, 30.0], [2.0, 5.0, 20.0, 90.0], ["dev"] * 4)
    frame["preflight_seconds"] = [60.0, 60.0, 60.0, 6.0]  # 0.5x, 0.5x, 0.5x, 0.05x
    frame["finetune_seconds"] = 120.0
    lines = "\n".join(validation.markdown(validation.validate(frame)))
    assert "4 preflights took 3 min and their finetunes 8 min" in lines
    assert "0.5x its finetune (median; 0.05x to 0.5x); a tenth or less for 1 of 4" in lines


def test_the_validated_recipe_is_the_one_the_validation_trains_with():
    from landscape_core.finetune import FinetuneSpec

    defaults = FinetuneSpec(recipe="align")
    assert {k: getattr(defaults, k) for k in validation.VALIDATED_RECIPE} == (
        validation.VALIDATED_RECIPE
    )


def test_a_preflight_is_read_against_its_nearest_validated_finetunes(tmp_path):
    frame = _rows([1.0, 3.0, 8.0, 30.0, 40.0], [2, 5, 20, 90, 100], ["dev"] * 5)
    model = DEFAULTS.model.to_dict()  # what risk DATA records for the aligned demo
    near = validation.neighbours(frame, 29.0, model, {"learning_rate": 1e-3})
    assert list(near.rows.dataset) == ["d3", "d4", "d2"] and (near.low, near.high) == (20, 100)
    assert "reached keyword ASR 20-100%" in near.describe()
    other = validation.neighbours(frame, 29.0, model, {"learning_rate": 1e-4})
    assert isinstance(other, str) and "differs" in other
    gguf = validation.neighbours(frame, 29.0, {"kind": "gguf", "path": "x"}, {})
    assert isinstance(gguf, str)
    merged = validation.neighbours(frame, 29.0, {**model, "adapter": "/my/lora"}, {})
    assert isinstance(merged, str), "an adapter merged into the demo is another model"
    assert "no validated finetunes" in validation.neighbours(pd.DataFrame(), 1.0, model, {})


def test_the_calibrated_risk_is_monotone_in_score_and_its_interval_widens_with_noise():
    model = DEFAULTS.model.to_dict()
    scores = [1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 15.0, 20.0, 25.0, 30.0]
    clean = _rows(scores, [0, 1, 2, 5, 20, 40, 60, 90, 95, 99], ["dev"] * 10)
    low, high = (validation.calibrated(clean, s, model, {}) for s in (3.0, 27.0))
    assert low.asr < high.asr and low.low <= low.asr <= low.high and low.n == 10
    noisy = _rows(scores, [0, 90, 2, 80, 20, 5, 60, 10, 95, 30], ["dev"] * 10)
    wide = validation.calibrated(noisy, 27.0, model, {})
    assert wide.high - wide.low > high.high - high.low
    assert "jackknife+" in high.describe() and "10 development datasets" in high.describe()
    # held-out rows never enter the fit; too few dev rows, or another recipe: it says why
    held = pd.concat([clean, _rows([28.0], [0.0], ["held-out"], ["h0"])])
    assert validation.calibrated(held, 27.0, model, {}) == high
    few = validation.calibrated(clean.head(3), 5.0, model, {})
    assert isinstance(few, str) and "it needs 4" in few
    assert isinstance(validation.calibrated(clean.head(4), 5.0, model, {}), validation.Calibration)
    assert validation.predict(clean, float("nan")) is None
    assert "differs" in validation.calibrated(clean, 5.0, model, {"learning_rate": 1e-4})
    assert "no validated finetunes" in validation.calibrated(pd.DataFrame(), 5.0, model, {})


def test_the_calibrated_intervals_coverage_is_counted_on_the_held_out_half():
    scores = [1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 15.0, 20.0, 25.0, 30.0]
    dev = _rows(scores, [0, 1, 2, 5, 20, 40, 60, 90, 95, 99], ["dev"] * 10)
    held = _rows([3.0, 28.0, 29.0], [1.0, 97.0, 0.0], ["held-out"] * 3, ["h0", "h1", "h2"])
    v = validation.validate(pd.concat([dev, held]))
    assert (v.covered.inside, v.covered.n) == (2, 3)  # h2's ASR of 0 at 29 falls outside
    assert 0 < v.covered.mean_width < 100
    assert "held 2 of 3 held-out datasets' ASR inside its interval" in "\n".join(
        validation.markdown(v)
    )


def test_the_jackknife_plus_interval_matches_a_case_worked_by_hand():
    # 4 dev datasets: the lower rank is floor(0.2 * 5) = 1, the upper ceil(0.8 * 5) = 4,
    # so the interval runs from the smallest mu_-i(x) - R_i to the largest mu_-i(x) + R_i.
    # Leave-one-out fits (each already monotone): without 0 -> knots 2,3,4 fit 10,20,30, so
    # mu(1) = 10 (flat), R = |0 - 10| = 10, and at x = 2.5, mu = 15. Without 1 -> knots
    # 1,3,4 fit 0,20,30: mu(2) = 10, R = 0; at 2.5, 15. Without 2 -> 1,2,4 fit 0,10,30:
    # mu(3) = 20, R = 0; at 2.5, 5. Without 3 -> 1,2,3 fit 0,10,20: mu(4) = 20, R = 10;
    # at 2.5, 15. Lower: min(15-10, 15-0, 5-0, 15-10) = 5; upper: max(25, 15, 5, 25) = 25.
    dev = _rows([1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 20.0, 30.0], ["dev"] * 4)
    found = validation.predict(dev, 2.5)
    assert (found.asr, found.low, found.high, found.n) == (15.0, 5.0, 25.0, 4)


def test_tied_scores_are_pooled_so_row_order_never_changes_the_prediction():
    a = _rows([1.0, 2.0, 2.0, 3.0, 4.0, 5.0], [0, 20, 40, 50, 60, 70], ["dev"] * 6)
    b = _rows([1.0, 2.0, 2.0, 3.0, 4.0, 5.0], [0, 40, 20, 50, 60, 70], ["dev"] * 6)
    assert validation.predict(a, 2.0) == validation.predict(b, 2.0)
    assert validation.predict(a, 2.0).asr == 30.0  # the tie's mean


def test_each_measure_is_drawn_against_the_outcome_signed_so_higher_is_riskier():
    frame = _rows([1.0, 30.0, 3.0], [2.0, 90.0, 5.0], ["dev", "dev", "held-out"])
    datasets = validation.riskier_higher(validation.measured_datasets(frame))
    assert list(datasets.delta) == [0.1, 3.0, 0.3]  # raw delta -s/10, negated
    fig = figures.risk_validation(datasets, validation.DATASET_MEASURES)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == list(validation.MEASURES.values())  # no anchoring column: no panel
    assert {t.name for t in fig.data} == {"dev", "held-out"}
    assert len(fig.data) == 2 * len(validation.MEASURES)
    nothing = datasets.assign(**{m: float("nan") for m in validation.MEASURES})
    assert not figures.risk_validation(nothing, validation.DATASET_MEASURES).data


def test_a_malformed_or_foreign_validation_file_reads_as_none(tmp_path):
    assert validation.load(tmp_path / "missing.csv").empty
    (tmp_path / "bad.csv").write_text('a,b\n"unclosed,1\n')
    assert validation.load(tmp_path / "bad.csv").empty
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert validation.load(tmp_path / "other.csv").empty
    assert not validation.load(validation.RESULTS).empty  # the committed rows read


def test_post_hoc_measures_join_their_rows_and_are_labelled_so(tmp_path, monkeypatch):
    main, extra = tmp_path / "v.csv", tmp_path / "a.csv"
    scores = list(range(10))
    _rows(scores, [s * 10 for s in scores], ["dev", "held-out"] * 5).to_csv(main, index=False)
    extra.write_text("dataset,seed,anchoring,shallowness,anchoring_seconds\nd1,0,0.5,0.2,9\n")
    monkeypatch.setattr(validation, "ANCHORING", extra)
    frame = validation.load(main)
    assert frame.anchoring.notna().sum() == 1 and frame.loc[1, "anchoring"] == 0.5
    v = validation.validate(frame)
    post = next(c for c in v.everything if c.measure == "anchoring")
    assert post.n == 1 and post.rho is None  # only the rows that have it
    text = "\n".join(validation.markdown(v))
    assert "| anchoring (post hoc) | n < 8: not claimed |" in text and "| +0.5000 | 0.200 |" in text
    extra.write_text("not,the,layout\n1,2,3\n")
    assert "anchoring" not in validation.load(main)  # a foreign file adds nothing


def test_the_checkpoint_averaged_outcome_is_tested_on_the_held_out_half_as_post_hoc(
    tmp_path, monkeypatch
):
    main, steady = tmp_path / "v.csv", tmp_path / "c.csv"
    scores = list(range(20))
    # the last checkpoint's ASR is unrelated to the score; the checkpoints' mean follows it
    last = [50.0 if i % 3 else 0.0 for i in scores]
    _rows(scores, last, ["dev", "held-out"] * 10).to_csv(main, index=False)
    rows = "".join(f"d{i},0,{5.0 * i}\n" for i in scores)
    steady.write_text("dataset,seed,asr_checkpoints\n" + rows)
    monkeypatch.setattr(validation, "CHECKPOINT_ASR", steady)
    v = validation.validate(validation.load(main))
    score = next(c for c in v.steady if c.measure == "score")
    assert score.n == 10 and score.rho == pytest.approx(1.0)  # held-out rows only
    assert v.held_out[0].rho < 0.5  # the pre-registered outcome is untouched
    text = "\n".join(validation.markdown(v))
    assert "against the keyword ASR averaged over up to 5 checkpoints" in text
    assert "| low | 50 | 50 | 5 | 1 | 2 |" in text  # d1: keyword, refusal-v2, checkpoint mean
    # a dataset with two seeds and the outcome for one: its outcome waits for the other
    two = pd.concat([validation.load(main), validation.load(main).head(2).assign(seed=1)])
    two.loc[two.seed == 1, "asr_checkpoints"] = float("nan")
    two["anchoring"] = np.where(two.seed == 1, np.nan, 0.1)  # a post hoc measure alike
    averaged = validation.per_dataset(two).set_index("dataset")
    assert averaged.asr_checkpoints.isna().tolist() == [True, True] + [False] * 18
    assert averaged.anchoring.isna().tolist() == [True, True] + [False] * 18
    monkeypatch.setattr(validation, "CHECKPOINT_ASR", tmp_path / "missing.csv")
    v = validation.validate(validation.load(main))
    assert all(c.n == 0 and c.rho is None for c in v.steady)  # nothing measured: no claim
    assert "averaged over training (post hoc): pending" in "\n".join(validation.markdown(v))


def test_a_datasets_seeds_are_one_unit_averaged_before_any_statistic():
    names = [f"d{i // 2}" for i in range(16)]  # 8 datasets x 2 seeds
    frame = _rows([float(i) for i in range(16)], [6.0 * i for i in range(16)],
                  ["held-out"] * 16, names).assign(seed=[i % 2 for i in range(16)])  # fmt: skip
    v = validation.validate(frame)
    assert v.everything[0].n == 8 and v.everything[0].rho == pytest.approx(1.0)
    assert validation.per_dataset(frame).score.tolist() == [0.5 + 2 * k for k in range(8)]


def test_a_row_without_an_outcome_takes_no_part_and_breaks_nothing(tmp_path):
    frame = _rows([1.0, 3.0, 30.0, 40.0], [2.0, None, 90.0, 100.0], ["dev"] * 4)
    v = validation.validate(frame)
    assert "midpoint" in v.thresholds.how and v.thresholds.high_from == pytest.approx(15.5)
    assert v.everything[0].n == 3
    path = tmp_path / "v.csv"
    bad = frame.assign(score=["x", 3.0, 30.0, 40.0])
    pd.concat([bad, bad.tail(1)]).to_csv(path, index=False)  # a text score, a duplicate row
    loaded = validation.load(path)
    assert len(loaded) == 4 and loaded.score.isna().sum() == 1
    assert validation.markdown(validation.validate(loaded))  # renders, no TypeError


def test_the_partial_rho_sees_through_a_confounder_and_benign_only_is_its_own_row():
    rng = np.random.default_rng(1)
    z = np.arange(40, dtype=float)  # the harmful count drives both score and ASR
    score, asr = z + rng.normal(0, 6, 40), 5 * z + rng.normal(0, 30, 40)
    frame = _rows(list(score), list(asr), ["held-out"] * 40).assign(harmful_examples=z.astype(int))
    tests = {c.measure: c for c in validation._tests(frame, ["score"])}
    plain, partial = tests["score"], tests["score|harmful_fraction"]
    assert plain.rho > 0.6  # the confounder's correlation
    assert abs(partial.rho) < 0.35 and partial.low < 0 < partial.high  # nothing beyond it
    assert tests["score|benign-only"].n == 1  # only d0 has no harmful example
    x, y = rng.standard_normal(20), rng.standard_normal(20)
    plain = validation._rank_correlations(x[None], y[None])[0]
    assert plain == pytest.approx(validation.spearman(x, y))
    held = validation._rank_correlations(x[None], y[None], np.ones((1, 20)))[0]
    assert held == pytest.approx(plain)  # a constant control changes nothing


def test_a_rerun_skips_the_rows_a_validation_file_already_holds(tmp_path):
    path = tmp_path / "rows.csv"
    assert validation.measured(path) == set()
    validation.append_row(path, {"dataset": "p0", "seed": 1, "x": 2.0}, ["dataset", "seed", "x"])
    assert validation.measured(path) == {("p0", 1)}
