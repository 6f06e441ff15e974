"""The paper report's risk validation section, from ``docs/risk-validation.csv`` alone.

Torch-free and store-free, so ``paper --risk-only`` can bring the section up to date
as the validation grows over rounds of work, where the stores behind the report's other
sections are not at hand.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import landscape_core.risk.validation as validation
from landscape_core.errors import UserError
from landscape_core.files import atomic_write_text
from landscape_core.readers import figures


def write_figure(assets: Path, name: str, figure: Any) -> str:
    """``figure`` as ``assets/name.html`` beside the report, and the report's link to it.

    The div is named, not a random id, so rewriting an unchanged report changes no file.
    """
    figure.write_html(assets / f"{name}.html", include_plotlyjs="directory", div_id=name)
    return f"[{name}.html]({assets.name}/{name}.html)"


RISK_HEADING = "### The risk preflight, validated on real finetunes (issue 30)"


def refresh_risk_section(out: Path) -> Path:
    """The risk validation's section of the report at ``out`` again; the rest as it was.

    Its only input is ``docs/risk-validation.csv``, which grows over rounds of work, so
    it can be brought up to date where the stores behind the other sections are not at
    hand (a fresh machine), without rewriting those sections as pending.
    """
    try:
        text = out.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{out} cannot be read ({e}); write the whole report first with "
                        "`python -m landscape_core paper --report-only`") from e  # fmt: skip
    start = text.find(RISK_HEADING)
    if start < 0:
        raise UserError(f"{out} has no section headed {RISK_HEADING!r}; write the whole "
                        "report with `python -m landscape_core paper --report-only`")  # fmt: skip
    end = text.find("\n## ", start)
    end = len(text) if end < 0 else end
    assets = out.parent / out.stem
    assets.mkdir(parents=True, exist_ok=True)
    lines = risk_lines(lambda name, figure: write_figure(assets, name, figure))
    tail = text[end:]  # the next section, from the newline before its heading
    atomic_write_text(out, text[:start] + "\n".join(lines) + ("\n" if tail else "") + tail)
    return out


def risk_lines(fig: Callable[[str, object], str]) -> list[str]:
    """The section's lines; ``fig`` writes a figure beside the report and returns its link."""
    frame = validation.load(validation.RESULTS)
    out = [
        RISK_HEADING,
        "",
        "Each dataset of `docs/risk-preregistration.md` is scored by the lookahead (3 "
        "real LoRA + AdamW steps of the finetuning recipe on a throwaway copy: refusal "
        "log-odds on 40 held-out AdvBench probes, token KL on MT-Bench and XSTest-safe), "
        "then finetuned with that recipe and judged on AdvBench 0-99 (32 new tokens, "
        "greedy). The thresholds are fitted on the development half only, by the "
        "pre-registered rule. Rows: `docs/risk-validation.csv`, written by "
        "`benchmarks/risk_validation.py`. The basin-edge preflight this replaces flagged "
        "every dataset 'high, 625x narrower' and tied them all at its search's step. "
        "The rho interval's coverage, checked on bivariate normals with a known rank "
        "correlation (`benchmarks/rho_coverage.py`, 400 draws each): 95-98% at n = 8, 12 "
        "and 20, so it errs wide.",
        "",
    ]
    if frame.empty:
        return [*out, "pending: run `benchmarks/risk_validation.py`.", ""]
    datasets = validation.riskier_higher(validation.measured_datasets(frame))
    scatter = fig("risk_validation", figures.risk_validation(datasets, validation.DATASET_MEASURES))
    lines = validation.markdown(validation.validate(frame))
    return [*out, *lines, f"Each measure against the outcome, per dataset: {scatter}", ""]
