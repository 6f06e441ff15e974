"""Every judge by name, in one table: the config, the CLI, Launch, the sweep and labels read it.

lm-evaluation-harness style: an entry names its factory by import path, so listing or
validating judges imports nothing (the model judges' torch loads only when one is
made, in ``judging.registry``). Adding a judge is adding one row here.

A judge's scores are stored under its *label*: a text judge's name, or for a model
judge ``name:<model dir>@<hash>`` (``identity.judge_label``). Readers ask by name and
``resolve_label`` finds the run's stored label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from landscape_core.errors import UserError

JudgeKind = Literal["text", "model", "sweep-only"]


@dataclass(frozen=True)
class JudgeEntry:
    name: str
    kind: JudgeKind  # text: stored answers only; model: runs a model; sweep-only: a measure
    factory: str  # "module:attribute", imported when the judge is made ("" for sweep-only)
    decides: str  # one line for help texts
    harm: bool = False  # it reads a compliance as harmful or not: the fourth state


_ENTRIES = (
    JudgeEntry(
        "keyword",
        "text",
        "landscape_core.judging.keyword:KeywordJudge",
        "refusal: any of the paper's 29 refusal keywords (the paper's judge)",
    ),
    JudgeEntry(
        "refusal-patterns",
        "text",
        "landscape_core.judging.patterns:RefusalPatternsJudge",
        "refusal: documented refusal phrasings in the answer's opening",
    ),
    JudgeEntry(
        "xstest-prefix",
        "text",
        "landscape_core.judging.patterns:XSTestPrefixJudge",
        "refusal: XSTest's string-match baseline (refusal prefixes)",
    ),
    JudgeEntry(
        "refusal-v2",
        "text",
        "landscape_core.judging.refusal_v2:RefusalV2Judge",
        "refusal, full or partial: a refusal's structure in the answer's opening, "
        "validated on held-out model styles",
    ),
    JudgeEntry(
        "classifier",
        "model",
        "landscape_core.judging.model_judges:ClassifierJudge",
        "refusal: a local sequence classifier (`path`, `refusal_labels`)",
    ),
    JudgeEntry(
        "llm-judge",
        "model",
        "landscape_core.judging.model_judges:LLMJudge",
        "refusal or harm: a local chat model answering a rubric or Llama Guard's prompt",
    ),
    # Guard models, each prompted in its published format (judging.guard_formats);
    # `path` names the local files. One row each: formats, replies and what they decide
    # differ, and a name per model is what a reader of a results table asks for.
    JudgeEntry(
        "llama-guard-3",
        "model",
        "landscape_core.judging.guards:GuardJudge",
        "harm: Llama Guard 3 (1B or 8B, told apart by its chat template) says unsafe; "
        "a safe answer counts as refused, so ASR is the harmful-ASR",
        harm=True,
    ),
    JudgeEntry(
        "qwen3guard",
        "model",
        "landscape_core.judging.guards:GuardJudge",
        "refusal and harm: Qwen3Guard-Gen (0.6B, 4B, 8B) answers Refusal and Safety",
        harm=True,
    ),
    JudgeEntry(
        "harmbench-cls",
        "model",
        "landscape_core.judging.guards:GuardJudge",
        "harm: HarmBench's Llama-2-13B classifier with its own prompt (the request is the "
        "behavior); a 'no' counts as refused, so ASR is HarmBench's ASR",
        harm=True,
    ),
    JudgeEntry(
        "wildguard",
        "model",
        "landscape_core.judging.guards:GuardJudge",
        "refusal and harm: WildGuard answers response refusal and harmful response",
        harm=True,
    ),
    JudgeEntry(
        "refusal-likelihood",
        "sweep-only",
        "",
        "P(answer opens with a refusal) under the perturbed model: `measure: "
        "refusal-likelihood` in a sweep, not a judge of stored answers",
    ),
)
JUDGES: dict[str, JudgeEntry] = {e.name: e for e in _ENTRIES}
REFUSAL_LIKELIHOOD = "refusal-likelihood"  # the label a refusal-likelihood sweep scores under
# The best validated refusal judge (decisions/2026-12-06-refusal-v2-validation.md): the
# first a finished run is offered to be judged by. The default stays keyword, the
# paper's, so results stay comparable to the paper.
BEST = "refusal-v2"


def names(kind: JudgeKind | None = None) -> tuple[str, ...]:
    """The judges' names, in the table's order (the paper's first), of one kind or all."""
    return tuple(e.name for e in _ENTRIES if kind is None or e.kind == kind)


def entry(name: str) -> JudgeEntry:
    """The entry a name stands for; an unknown name lists the known ones."""
    try:
        return JUDGES[name]
    except KeyError:
        raise UserError(f"unknown judge {name!r}; known judges: {', '.join(names())}") from None


def decides_harm(label: str) -> bool:
    """Whether the judge a stored label (or name) stands for reads harm (the fourth state)."""
    found = JUDGES.get(label_name(label))
    return found is not None and found.harm


def not_yet(stored: Sequence[str]) -> tuple[str, ...]:
    """The judges of stored answers a run has no verdicts of yet (by name), the best first.

    ``stored``: the run's labels. What the Landscape page offers to judge it with.
    """
    have = {label_name(label) for label in stored}
    judges = names("text") + names("model")
    ordered = (BEST, *(n for n in judges if n != BEST))
    return tuple(n for n in ordered if n not in have)


def titles(stored: Sequence[str]) -> dict[str, str]:
    """Each stored label as a reader names it: its judge's name.

    The whole label where two of the run's labels share a name (two classifiers, say).
    """
    made_from = [label_name(label) for label in stored]
    return {
        label: name if made_from.count(name) == 1 else label
        for label, name in zip(stored, made_from, strict=True)
    }


def label_name(label: str) -> str:
    """The judge name a stored label was made from (``classifier:dir@hash`` -> classifier)."""
    return label.split(":", 1)[0]


def resolve_label(asked: str | None, stored: Sequence[str]) -> str:
    """The stored label a judge asked for by name or label stands for, in one run.

    ``None`` asks for the run's first judge (the paper's keyword judge where it ran). A
    name matches the labels made from it; a run nothing has scored yet keeps the name.
    """
    if asked is None:
        return stored[0] if stored else "keyword"
    if asked in stored:
        return asked
    matches = [label for label in stored if label_name(label) == asked]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(
            f"judge {asked!r} scored this run under several labels: {', '.join(matches)}; "
            "pass one of them"
        )
    if not stored:
        return asked
    raise UserError(
        f"no verdicts by judge {asked!r} in this run; it has: {', '.join(stored)} "
        f"(add one with `python -m landscape_core rescore RUN --judge {asked}`)"
    )
