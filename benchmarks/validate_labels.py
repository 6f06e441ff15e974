"""The labelled validation set against the tool's verdicts (issue 29): prints, asserts nothing.

Joins a labels file (``id, label[, label_pass2]``; labels: refused, complied-on-goal,
complied-off-goal, incoherent) to the sample's key (``label_sample.py``) and the store's
answers, then prints:

- the labels' own agreement: Cohen's kappa of the two passes over the four classes,
  with a 95% bootstrap interval over answers;
- the coherence rule ("incoherent": NLL per token under the unperturbed model above
  ``max_nll``, repeated trigrams above ``max_repetition``, or broken text) against the
  human "incoherent": precision and recall per |alpha| band and overall;
- thresholds chosen on a dev half of the answers (best F1 on a grid), checked on the
  other half against the rule's current thresholds.

With ``--save-as NAME`` the first pass is stored as NAME's labels in the store
(``answer_labels``, complied-on/off-goal both as ``complied``), so that
``judge-eval --from-store --labeller NAME`` reports each judge's kappa on these answers.

    .venv/bin/python benchmarks/validate_labels.py --store STORE --key KEY --labels LABELS
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape_core.judging.coherence import THRESHOLDS, Thresholds, state  # noqa: E402
from landscape_core.store.runs import Store  # noqa: E402

LABELS = ("refused", "complied-on-goal", "complied-off-goal", "incoherent")
TO_STORE = {"refused": "refused", "complied-on-goal": "complied",
            "complied-off-goal": "complied", "incoherent": "incoherent"}  # fmt: skip
NLL_GRID = np.round(np.arange(1.0, 8.01, 0.25), 2)
REPETITION_GRID = np.round(np.arange(0.2, 0.61, 0.05), 2)


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two raters' class codes (0..len(LABELS)-1)."""
    k = len(LABELS)
    table = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(0) * table.sum(1)).sum()) / (n * n)
    return 1.0 if expected == 1 else float((observed - expected) / (1 - expected))


def kappa_with_interval(a: pd.Series, b: pd.Series, resamples: int = 2000):
    """Kappa and its 95% percentile bootstrap interval over answers (seed 0)."""
    codes = {label: i for i, label in enumerate(LABELS)}
    x, y = a.map(codes).to_numpy(), b.map(codes).to_numpy()
    rng = np.random.default_rng(0)
    draws = [cohen_kappa(x[k], y[k]) for k in rng.integers(0, len(x), (resamples, len(x)))]
    return cohen_kappa(x, y), *np.nanpercentile(draws, [2.5, 97.5])


def rule_incoherent(frame: pd.DataFrame, thresholds: Thresholds) -> pd.Series:
    """The coherence rule's "incoherent": ``judging.coherence.state`` itself, refusal aside."""
    return pd.Series(
        [state(False, r.text, r.coherence_nll, r.repetition, thresholds) == "incoherent"
         for r in frame.itertuples()],
        index=frame.index,
    )  # fmt: skip


def precision_recall(human: pd.Series, rule: pd.Series) -> dict[str, float]:
    tp = int((human & rule).sum())
    fp, fn = int((~human & rule).sum()), int((human & ~rule).sum())
    return {
        "n": len(human), "human incoherent": int(human.sum()), "rule incoherent": int(rule.sum()),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
    }  # fmt: skip


def calibrate(dev: pd.DataFrame) -> Thresholds:
    """The grid's thresholds with the best F1 on ``dev`` (ties: the current rule's nearest)."""
    human = dev.label == "incoherent"
    best, chosen = -1.0, THRESHOLDS
    for nll, rep in itertools.product(NLL_GRID, REPETITION_GRID):
        t = Thresholds(max_nll=float(nll), max_repetition=float(rep))
        f1 = precision_recall(human, rule_incoherent(dev, t))["f1"]
        distance = abs(nll - THRESHOLDS.max_nll) + abs(rep - THRESHOLDS.max_repetition)
        if f1 > best + 1e-12 or (abs(f1 - best) <= 1e-12 and distance < _distance(chosen)):
            best, chosen = f1, t
    return chosen


def _distance(t: Thresholds) -> float:
    return abs(t.max_nll - THRESHOLDS.max_nll) + abs(t.max_repetition - THRESHOLDS.max_repetition)


def joined(store: Store, key: Path, labels: Path) -> pd.DataFrame:
    """Labels, the sample's key, and each answer's text and coherence measures."""
    frame = pd.read_csv(key).merge(pd.read_csv(labels), on="id", how="inner")
    bad = sorted(set(frame.label) - set(LABELS))
    if bad:
        raise SystemExit(f"unknown labels {bad}; use {', '.join(LABELS)}")
    gens = pd.concat(store.generations_frame(r) for r in frame.run_id.unique())
    gens = gens.drop_duplicates(["point_key", "prompt_index"])
    cols = ["point_key", "prompt_index", "text", "coherence_nll", "repetition", "prompt"]
    frame = frame.merge(gens[cols], on=["point_key", "prompt_index"], how="left")
    unmeasured = frame.coherence_nll.isna() | frame.repetition.isna()
    if unmeasured.any():
        print(f"left out: {int(unmeasured.sum())} answers with no coherence measured yet")
    return frame[~unmeasured]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--save-as", default="", help="store the first pass as NAME's labels")
    args = parser.parse_args()
    store = Store.open(args.store)
    frame = joined(store, args.key, args.labels)
    print(f"{len(frame)} labelled answers; labels: {frame.label.value_counts().to_dict()}")
    print(pd.crosstab([frame.run_label, frame.band], frame.label))

    if "label_pass2" in frame:
        both = frame[frame.label_pass2.notna()]
        k, low, high = kappa_with_interval(both.label, both.label_pass2)
        print(f"\nsecond pass over {len(both)}: kappa {k:.3f} [{low:.3f}, {high:.3f}] "
              "(4 classes, bootstrap over answers)")  # fmt: skip
        print(pd.crosstab(both.label, both.label_pass2))

    human = frame.label == "incoherent"
    current = rule_incoherent(frame, THRESHOLDS)
    print(f"\ncoherence rule (max NLL {THRESHOLDS.max_nll}, max repetition "
          f"{THRESHOLDS.max_repetition}) against the human 'incoherent':")  # fmt: skip
    rows = {b: precision_recall(human[frame.band == b], current[frame.band == b])
            for b in sorted(frame.band.unique())}  # fmt: skip
    rows["all"] = precision_recall(human, current)
    print(pd.DataFrame(rows).T.round(3).to_string())

    dev_ids = frame.id.sample(frac=0.5, random_state=0)
    dev, test = frame[frame.id.isin(dev_ids)], frame[~frame.id.isin(dev_ids)]
    chosen = calibrate(dev)
    test_human = test.label == "incoherent"
    print(f"\ndev half ({len(dev)}): best F1 at max NLL {chosen.max_nll}, "
          f"max repetition {chosen.max_repetition}")  # fmt: skip
    checked = {
        "current rule, test half": precision_recall(test_human, rule_incoherent(test, THRESHOLDS)),
        "dev-chosen, test half": precision_recall(test_human, rule_incoherent(test, chosen)),
    }
    print(pd.DataFrame(checked).T.round(3).to_string())
    chosen_rule = rule_incoherent(test, chosen)
    by_band = {b: precision_recall(test_human[test.band == b], chosen_rule[test.band == b])
               for b in sorted(test.band.unique())}  # fmt: skip
    print("dev-chosen thresholds on the test half, by |alpha| band:")
    print(pd.DataFrame(by_band).T.round(3).to_string())

    if args.save_as:
        for r in frame.itertuples():
            store.answer_labels.save(r.point_key, r.prompt_index, args.save_as, TO_STORE[r.label])
        print(f"\nstored {len(frame)} labels as {args.save_as!r}")


if __name__ == "__main__":
    main()
