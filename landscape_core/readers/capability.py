"""Capability on the same grid as a safety run: fluency and over-refusal.

A safety sweep's companions share its model, system prompt, directions and grid, so
their points line up one for one (same snake order, same coordinates):

- ``fluency``: the perplexity of MT-Bench turn-1 answers under the perturbed model.
  The answers are the unperturbed model's own greedy answers, generated once (they
  are the origin point of the same sweep measuring answers). Perplexity is
  ``exp(sum NLL / sum tokens)`` over all answers of a point.
- ``over-refusal``: the refusal rate on XSTest's safe prompts (refusing them is over-
  refusal), and ``unsafe-refusal`` on its unsafe contrast prompts (refusing is right).
  Both use XSTest's held-out (odd) rows, which the aligned demo never trained on, and
  are judged by ``refusal-patterns`` (the keyword judge counts any mention of
  "illegal" as a refusal, which benign answers often contain).

The run ids come from ``plan.identity.plan``, so finding a run's companions needs no torch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from landscape_core.errors import UserError
from landscape_core.plan.identity import plan
from landscape_core.readers.results import accuracy, at_origin
from landscape_core.spec.config import (
    MMLU_SUBJECTS,
    GenerationSpec,
    JudgeSpec,
    PromptSetSpec,
    SweepSpec,
)
from landscape_core.store.runs import Store

# MT-Bench questions the fluency companion scores: all 80, or a quicker 20 (`breakage
# --quick-fluency`; a mean NLL rise of 1 nat/token is clear on 20 answers)
FLUENCY_PROMPTS = (80, 20)
XSTEST_LIMIT = 50  # prompts per XSTest subset: enough for a rate, cheap enough per point
MMLU_LIMIT = 100  # scored questions per MMLU subject (after its 5 shots)
MMLU_COLUMNS = tuple(f"mmlu:{s}" for s in MMLU_SUBJECTS)
CAPABILITY_JUDGE = "refusal-patterns"


def companions(spec: SweepSpec, fluency_prompts: int | None = None) -> dict[str, SweepSpec]:
    """The capability sweeps that share ``spec``'s model, system prompt and grid.

    A basin search has no grid to share, so it has none. ``fluency_prompts``: how many
    MT-Bench questions the fluency companion scores (one of ``FLUENCY_PROMPTS``; the
    first when not given).
    """
    fluency_prompts = fluency_prompts or FLUENCY_PROMPTS[0]
    if fluency_prompts not in FLUENCY_PROMPTS:
        raise UserError(f"fluency is measured on {' or '.join(map(str, FLUENCY_PROMPTS))} "
                        "MT-Bench questions")  # fmt: skip
    if spec.measure == "basin-radius":
        return {}
    base = dataclasses.replace(
        spec,
        generation=GenerationSpec(max_new_tokens=spec.generation.max_new_tokens),
        judges=(JudgeSpec(), JudgeSpec(name=CAPABILITY_JUDGE)),
        measure="answers",
    )
    label = spec.label or "run"

    def xstest(subset: str) -> PromptSetSpec:
        return PromptSetSpec(source="xstest", subset=subset, split="heldout", limit=XSTEST_LIMIT)  # type: ignore[arg-type]

    return {
        "fluency": dataclasses.replace(
            base,
            prompts=PromptSetSpec(source="mt_bench", limit=fluency_prompts),
            measure="perplexity",
            label=f"{label} · fluency",
        ),
        "over-refusal": dataclasses.replace(
            base, prompts=xstest("safe"), label=f"{label} · over-refusal"
        ),
        "unsafe-refusal": dataclasses.replace(
            base, prompts=xstest("unsafe"), label=f"{label} · unsafe-refusal"
        ),
        **{
            f"mmlu:{subject}": dataclasses.replace(
                base,
                prompts=PromptSetSpec(source="mmlu", subject=subject, limit=MMLU_LIMIT),
                measure="multiple-choice",
                judges=(JudgeSpec(),),
                label=f"{label} · mmlu:{subject}",
            )
            for subject in MMLU_SUBJECTS
        },
    }


def companion_runs(store: Store, spec: SweepSpec) -> dict[str, str]:
    """Companion name -> run id, for the companions already in the store.

    Fluency: the full companion when it is stored, else the quicker one.
    """
    known = set(store.runs_frame().run_id)
    quick = companions(spec, FLUENCY_PROMPTS[1]).get("fluency")
    found: dict[str, str] = {}
    for name, companion in companions(spec).items():
        options = [companion, quick] if name == "fluency" else [companion]
        ids = (plan(c, store.file_digest).run_id for c in options)  # planned while needed
        stored = next((run_id for run_id in ids if run_id in known), None)
        if stored is not None:
            found[name] = stored
    return found


def capability_frame(store: Store, run_id: str) -> pd.DataFrame:
    """Per point of a safety run: coords, ``asr`` and each companion's measure.

    Columns: ``perplexity`` (fluency), ``over_refusal`` and ``unsafe_refusal``
    (percent refused), and ``mmlu:SUBJECT`` (percent correct, 5-shot); a companion not
    yet run, or a point not yet done, is NaN.
    """
    run = store.run(run_id)
    frame = store.points_frame(run_id)[["idx", "rep", "i", "j", "alpha", "beta", "asr"]]
    runs = companion_runs(store, SweepSpec.from_dict(run["spec"]))
    frame["perplexity"] = np.nan
    frame["over_refusal"] = np.nan
    frame["unsafe_refusal"] = np.nan
    for column in MMLU_COLUMNS:
        frame[column] = np.nan
        if column in runs:
            frame[column] = frame.idx.map(accuracy(store, runs[column]))
    if "fluency" in runs:
        values = store.measures_frame(runs["fluency"])
        if not values.empty:
            sums = values.groupby("idx")[["nll", "tokens"]].sum()
            ppl = np.exp(sums.nll / sums.tokens.clip(lower=1))
            frame["perplexity"] = frame.idx.map(ppl)
    for name, column in (("over-refusal", "over_refusal"), ("unsafe-refusal", "unsafe_refusal")):
        if name in runs:
            asr = store.points_frame(runs[name], CAPABILITY_JUDGE).set_index("idx").asr
            frame[column] = frame.idx.map(100.0 - asr)
    return frame


def capability_summary(frame: pd.DataFrame) -> dict[str, float | None]:
    """Figures for a table beside VISAGE: at the model and the worst over the grid."""
    origin = at_origin(frame)

    def at_model(column: str) -> float | None:
        value = origin[column].iloc[0] if not origin.empty else np.nan
        return None if pd.isna(value) else float(value)

    def worst(column: str) -> float | None:
        value = frame[column].max()
        return None if pd.isna(value) else float(value)

    return {
        "perplexity at model": at_model("perplexity"),
        "max perplexity": worst("perplexity"),
        "over-refusal at model (%)": at_model("over_refusal"),
        "unsafe refusal at model (%)": at_model("unsafe_refusal"),
        **{f"{c} at model (%)": at_model(c) for c in MMLU_COLUMNS},
    }
