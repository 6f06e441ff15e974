"""Validate a judge against human labels: accuracy, precision, recall and Cohen's kappa.

Kappa comes with a 95% bootstrap interval, recall is given per human label class
(full and partial refusals apart), and kappa per source model when the file has a
``model`` column: a judge fitted to one family's refusals shows it there.

The labels come from a CSV, or from the store (``readers.labelling.store_labelled``: people's labels
on a run's answers, made on the Answers page). The CSV has columns ``prompt``,
``completion`` and ``label``. A label is XSTest's ``1_full_compliance``,
``2_full_refusal`` or ``3_partial_refusal`` (partial counts as refusal, as in the
XSTest paper), or plainly ``refused``/``complied``. XSTest's own
files name the label column ``final_label``; that name is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from landscape_core.errors import UserError
from landscape_core.judging.registry import make_judge
from landscape_core.judging.verdict import score_all
from landscape_core.spec.config import JudgeSpec

REFUSED_LABELS = {"2_full_refusal", "3_partial_refusal", "refused", "refusal", "full_refusal",
                  "partial_refusal", "partial"}  # fmt: skip
COMPLIED_LABELS = {"1_full_compliance", "complied", "compliance", "full_compliance"}
# each label's class, the rows of the per-class recall table
LABEL_CLASSES = {
    "1_full_compliance": "full_compliance", "full_compliance": "full_compliance",
    "complied": "complied", "compliance": "complied",
    "2_full_refusal": "full_refusal", "full_refusal": "full_refusal",
    "3_partial_refusal": "partial_refusal", "partial_refusal": "partial_refusal",
    "partial": "partial_refusal", "refused": "refused", "refusal": "refused",
}  # fmt: skip
RESAMPLES = 2000  # bootstrap resamples for kappa's interval (seed 0: the same every run)


@dataclass(frozen=True)
class Agreement:
    n: int
    accuracy: float
    precision: float  # of the judge's refusals, the share humans call refusals
    recall: float  # of the humans' refusals, the share the judge finds
    kappa: float
    confusion: pd.DataFrame  # rows: human label, columns: judge verdict
    disagreements: pd.DataFrame
    by_model: pd.DataFrame | None = None  # rows per source model, when the file names it
    frame: pd.DataFrame | None = None  # every scored row, with ``judge_refused``
    kappa_low: float = float("nan")  # kappa's 95% bootstrap interval
    kappa_high: float = float("nan")
    by_label: pd.DataFrame | None = None  # recall per human label class


def load_labelled(path: Path) -> pd.DataFrame:
    """The labelled rows with a boolean ``human_refused``; bad files raise UserError."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}") from None
    if "label" not in frame.columns and "final_label" in frame.columns:
        frame = frame.rename(columns={"final_label": "label"})
    missing = [c for c in ("prompt", "completion", "label") if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path} lacks the column(s) {', '.join(missing)}; "
            "it needs prompt, completion and label"
        )
    labels = frame.label.str.strip().str.lower()
    unknown = sorted(set(labels) - REFUSED_LABELS - COMPLIED_LABELS)
    if unknown:
        raise UserError(
            f"{path}: unknown label(s) {unknown[:5]}; use 1_full_compliance, "
            "2_full_refusal, 3_partial_refusal, refused or complied"
        )
    if frame.empty:
        raise UserError(f"{path} has no rows")
    return frame.assign(
        human_refused=labels.isin(REFUSED_LABELS), label_class=labels.map(LABEL_CLASSES)
    )


def agreement(human: pd.Series, judge: pd.Series, frame: pd.DataFrame) -> Agreement:
    """Agreement of the judge's verdicts with the humans' (True = refused)."""
    h, j = human.astype(bool).to_numpy(), judge.astype(bool).to_numpy()
    n = len(h)
    tp, tn = int((h & j).sum()), int((~h & ~j).sum())
    fp, fn = int((~h & j).sum()), int((h & ~j).sum())
    observed = (tp + tn) / n
    kappa = _kappa(h, j)
    confusion = pd.DataFrame(
        [[tn, fp], [fn, tp]],
        index=pd.Index(["human: complied", "human: refused"]),
        columns=pd.Index(["judge: complied", "judge: refused"]),
    )
    wrong = frame[h != j]
    low, high = kappa_interval(h, j)
    return Agreement(
        n=n,
        accuracy=observed,
        precision=tp / (tp + fp) if tp + fp else float("nan"),
        recall=tp / (tp + fn) if tp + fn else float("nan"),
        kappa=kappa,
        confusion=confusion,
        disagreements=wrong,
        kappa_low=low,
        kappa_high=high,
    )


def kappa_interval(
    human: np.ndarray, judge: np.ndarray, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """Kappa's 95% percentile bootstrap interval over rows (seed 0, so reruns agree)."""
    h, j = np.asarray(human, dtype=bool), np.asarray(judge, dtype=bool)
    if len(h) == 0:
        return float("nan"), float("nan")
    k = np.random.default_rng(0).integers(0, len(h), (resamples, len(h)))
    kappas = _kappas(h[k], j[k])
    low, high = np.nanpercentile(kappas, [2.5, 97.5]) if np.isfinite(kappas).any() else (
        float("nan"), float("nan"))  # fmt: skip
    return float(low), float(high)


def evaluate(frame: pd.DataFrame, spec: JudgeSpec, models_dir: Path) -> Agreement:
    """Score every labelled completion with the judge and compare with the humans.

    ``frame``: ``load_labelled`` (a CSV) or ``readers.labelling.store_labelled`` (the
    store's labels).
    """
    judge = make_judge(spec, models_dir)
    verdicts = score_all(judge, list(frame.prompt), list(frame.completion))
    frame = frame.assign(
        judge_refused=[v.refused for v in verdicts],
        judge_partial=[v.refused and v.partial for v in verdicts],
        evidence=[v.evidence for v in verdicts],
        confidence=[v.confidence for v in verdicts],
    )
    result = agreement(frame.human_refused, frame.judge_refused, frame)
    # most confident mistakes first, when the judge gives a confidence
    worst = result.disagreements.sort_values("confidence", ascending=False, na_position="last")
    extra = {"disagreements": worst, "by_model": _by_model(frame), "frame": frame,
             "by_label": by_label(frame)}  # fmt: skip
    return Agreement(**{**result.__dict__, **extra})


@dataclass(frozen=True)
class KappaDifference:
    """kappa(judge) - kappa(baseline) on the same rows, with a paired bootstrap interval."""

    difference: float
    low: float
    high: float
    method: str = "paired bootstrap over rows, percentile, 2,000 resamples, seed 0"


def kappa_difference(
    human: pd.Series, judge: pd.Series, baseline: pd.Series, resamples: int = 2000
) -> KappaDifference:
    """Whether one judge agrees with humans better than another, beyond the sample's noise."""
    h, a, b = (np.asarray(x, dtype=bool) for x in (human, judge, baseline))
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(resamples):
        k = rng.integers(0, len(h), len(h))
        diffs.append(_kappa(h[k], a[k]) - _kappa(h[k], b[k]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return KappaDifference(_kappa(h, a) - _kappa(h, b), float(low), float(high))


def _kappa(h: np.ndarray, j: np.ndarray) -> float:
    return float(_kappas(h[None, :], j[None, :])[0])


def _kappas(h: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cohen's kappa of each row of two (resamples, n) boolean arrays.

    Where both raters give one class only (expected agreement 1) kappa is 1 if they
    agree, as before; it is NaN only where kappa is undefined otherwise.
    """
    n = h.shape[1]
    observed = (h == j).mean(axis=1)
    hs, js = h.sum(axis=1), j.sum(axis=1)
    expected = (hs * js + (n - hs) * (n - js)) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1 - expected)
    return np.where(expected == 1, 1.0, kappa)


def by_label(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Per human label class: how many rows, and the share the judge puts in that class.

    For a refusal class (full or partial) that share is the judge's recall; for a
    compliance class it is the share left uncalled (1 - false refusals).
    """
    if "label_class" not in frame.columns:
        return None
    rows = []
    for kind, part in frame.groupby("label_class", sort=True):
        refused = int(part.judge_refused.sum())
        human_refused = bool(part.human_refused.iloc[0])
        agree = refused if human_refused else len(part) - refused
        row = {"label": kind, "human": "refused" if human_refused else "complied",
               "rows": len(part), "judge refused": refused,
               "judge complied": len(part) - refused, "recall": agree / len(part)}  # fmt: skip
        if "judge_partial" in part.columns and part.judge_partial.any():
            row["judge partial"] = int(part.judge_partial.sum())
        rows.append(row)
    table = pd.DataFrame(rows).set_index("label")
    if "judge partial" in table.columns:
        table["judge partial"] = table["judge partial"].fillna(0).astype(int)
    return table


def _by_model(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Agreement per source model: a judge can suit one model's refusals and not another's."""
    if "model" not in frame.columns:
        return None
    rows = []
    for model, part in frame.groupby("model", sort=True):
        one = agreement(part.human_refused, part.judge_refused, part)
        c = one.confusion.to_numpy()
        rows.append({"model": model, "rows": one.n, "accuracy": one.accuracy,
                     "kappa": one.kappa, "kappa_low": one.kappa_low,
                     "kappa_high": one.kappa_high, "tn": c[0, 0], "fp": c[0, 1],
                     "fn": c[1, 0], "tp": c[1, 1]})  # fmt: skip
    return pd.DataFrame(rows).set_index("model")


def report(result: Agreement, judge_name: str, top: int = 10) -> str:
    """The printed report; the word ``kappa`` precedes Cohen's kappa."""
    lines = [
        f"judge: {judge_name}   rows: {result.n}",
        f"accuracy {result.accuracy:.3f}  precision {result.precision:.3f}  "
        f"recall {result.recall:.3f}  kappa {result.kappa:.3f} "
        f"[{result.kappa_low:.3f}, {result.kappa_high:.3f}]",
        f"(kappa's 95% interval: percentile bootstrap over rows, {RESAMPLES:,} resamples, seed 0)",
        "",
        result.confusion.to_string(),
        "",
        *(
            [
                "per human label class (recall: the share the judge puts in the human's class):",
                result.by_label.round(3).to_string(),
                "",
            ]
            if result.by_label is not None
            else []
        ),
        *(
            [
                "per source model (kappa_low, kappa_high: its 95% bootstrap interval; "
                "tn fp / fn tp: the confusion table's cells):",
                result.by_model.round(3).to_string(),
                "",
            ]
            if result.by_model is not None
            else []
        ),
        f"disagreements: {len(result.disagreements)} (up to {top} shown, most confident first)",
    ]
    for _, row in result.disagreements.head(top).iterrows():
        human = "refused" if row.human_refused else "complied"
        judge = "refused" if row.judge_refused else "complied"
        text = " ".join(str(row.completion).split())
        lines += [
            f"- human {human} ({row.label}), judge {judge}: {row.evidence}",
            f"  prompt: {str(row.prompt)[:100]!r}",
            f"  answer: {text[:160]!r}",
        ]
    return "\n".join(lines)
