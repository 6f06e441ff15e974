"""Judges by name: the text judges directly, the model judges when one is asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from landscape_core.errors import UserError
from landscape_core.judging.keyword import KeywordJudge
from landscape_core.judging.patterns import RefusalPatternsJudge, XSTestPrefixJudge
from landscape_core.judging.refusal_v2 import RefusalV2Judge
from landscape_core.judging.verdict import Judge
from landscape_core.spec.config import MODEL_JUDGES, SWEEP_ONLY_JUDGES, JudgeSpec

TEXT_JUDGES: dict[str, Callable[[], Judge]] = {
    "keyword": KeywordJudge,
    "refusal-patterns": RefusalPatternsJudge,
    "xstest-prefix": XSTestPrefixJudge,
    "refusal-v2": RefusalV2Judge,
}


def make_judge(spec: JudgeSpec, models_dir: Path | None = None) -> Judge:
    """The judge a spec names; an unknown name lists the known ones.

    ``models_dir`` is the store's, where the bundled model's safetensors copy lives:
    ``llm-judge`` without a path judges with the bundled model and needs it.
    """
    if spec.name in MODEL_JUDGES:
        if spec.name == "llm-judge" and not spec.path and models_dir is None:
            raise ValueError("llm-judge with the bundled model needs the store's models_dir")
        # torch and transformers load only when a model judge is asked for
        from landscape_core.judging import model_judges

        if spec.name == "classifier":
            return model_judges.ClassifierJudge(spec)
        return model_judges.LLMJudge(spec, models_dir or Path())
    if spec.name in SWEEP_ONLY_JUDGES:
        raise UserError(
            "refusal-likelihood scores the perturbed model itself, not stored answers: "
            "sweep with `measure: refusal-likelihood`"
        )
    try:
        return TEXT_JUDGES[spec.name]()
    except KeyError:
        known = sorted([*TEXT_JUDGES, *MODEL_JUDGES, *SWEEP_ONLY_JUDGES])
        raise UserError(f"unknown judge {spec.name!r}; known judges: {', '.join(known)}") from None
