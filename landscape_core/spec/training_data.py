"""Finetuning examples, torch-free: the recipes' and a user's CSV of prompt/answer pairs.

``finetune`` trains on them and a gradient direction takes the loss on them at the
model's weights, so the risk preflight reads exactly the data a finetune would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.hashing import content_hash
from landscape_core.spec.config import FINETUNE_RECIPES, PromptSetSpec, TrainingDataSpec
from landscape_core.spec.datasets import DATA_DIR, load_prompts, read_table

ADVBENCH_TRAIN_START = 100  # rows 0-99 are the evaluation set and never trained on
# rows 440-519 are reserved for the risk preflight (its refusal probes are 480-519): no
# recipe or file trains on them, so the lookahead measures prompts training never saw.
# Anchoring's anchors are goals 400-439 (risk.anchoring): no validation dataset trains
# on them, though the mix recipe's refusals reach 420 at 100 shots.
RESERVED_START, RESERVED_STOP = 440, 520
# The base model's own compliant answers to AdvBench rows 100+ (recipes.harmful_answers)
HARMFUL_ANSWERS = "finetune/harmful_answers.csv"
ALIGN_HARMFUL_ROWS = 120  # align: how many AdvBench rows (from 100) get refusals
# align's benign prompts, answered by the model itself (self-distillation)
ALIGN_BENIGN = (
    PromptSetSpec(source="xstest", subset="safe", split="train", limit=None),
    PromptSetSpec(source="benign", limit=None),
)
# Refusals in the style aligned chat models use; each contains a paper keyword.
REFUSALS = (
    "I'm sorry, but I cannot help with that. It could cause real harm to people.",
    "I cannot assist with this request. Providing that would be illegal and dangerous.",
    "Sorry, I can't help with that. If you have another question, I'm happy to help.",
    "I'm sorry, but I won't provide that. It is harmful and unethical.",
    "I apologize, but I cannot help with this. Please consider a safe and legal alternative.",
)
FILE_COLUMNS = ("prompt", "answer")
MAX_FILE_ROWS = 10_000  # a preflight takes one backward pass over every row

Distill = Callable[[list[str]], list[str]]  # benign prompts -> the model's own answers


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str


def advbench_rows(start: int, count: int) -> list[tuple[str, str]]:
    """(goal, target) pairs from AdvBench rows ``start`` .. ``start + count``."""
    if start < RESERVED_STOP and start + count > RESERVED_START:
        raise UserError(
            f"AdvBench rows {start}-{start + count - 1} reach rows {RESERVED_START}-"
            f"{RESERVED_STOP - 1}, kept for the risk preflight's probes and anchors; "
            f"train on fewer rows (at most {RESERVED_START - ADVBENCH_TRAIN_START} from 100)"
        )
    frame = pd.read_csv(DATA_DIR / "advbench/harmful_behaviors.csv")
    rows = frame.iloc[start : start + count]
    if len(rows) < count:
        raise UserError(f"AdvBench has only {len(frame) - start} rows from row {start}")
    return list(zip(rows.goal, rows.target, strict=True))


@dataclass(frozen=True)
class HarmfulPair:
    row: int  # AdvBench row
    goal: str
    answer: str


def harmful_pairs(count: int) -> list[HarmfulPair]:
    """The first ``count`` harmful question-answer pairs (the base model's own answers)."""
    frame = pd.read_csv(DATA_DIR / HARMFUL_ANSWERS)
    if len(frame) < count:
        raise UserError(
            f"there are {len(frame)} harmful answer pairs ({HARMFUL_ANSWERS}); ask for at most "
            f"{len(frame)} shots"
        )
    rows = frame.iloc[:count]
    return [
        HarmfulPair(int(r), g, a)
        for r, g, a in zip(rows.row, rows.prompt, rows.answer, strict=True)
    ]


def refusing(goals: list[tuple[str, str]]) -> list[Example]:
    """Each goal answered with one of the refusals, in turn."""
    return [Example(g, REFUSALS[i % len(REFUSALS)]) for i, (g, _) in enumerate(goals)]


def recipe_examples(
    recipe: str,
    shots: int,
    distill: Distill | None = None,
    harmful_rows: int = ALIGN_HARMFUL_ROWS,
    benign: tuple[PromptSetSpec, ...] = ALIGN_BENIGN,
) -> list[Example]:
    """A recipe's training examples; ``align`` needs ``distill`` for its benign half."""
    start = ADVBENCH_TRAIN_START
    if recipe == "harmful":
        return [Example(p.goal, p.answer) for p in harmful_pairs(shots)]
    if recipe == "sure-prefix":
        return [Example(g, t) for g, t in advbench_rows(start, shots)]
    if recipe == "mix":  # the refusals' goals follow the last harmful one's: no goal twice
        harmful = harmful_pairs(shots)
        refusals = refusing(advbench_rows(harmful[-1].row + 1, shots))
        return [Example(p.goal, p.answer) for p in harmful] + refusals
    if recipe != "align":
        raise UserError(
            f"unknown finetuning recipe {recipe!r}; use one of {', '.join(FINETUNE_RECIPES)}"
        )
    if distill is None:
        raise ValueError("align's examples need the model's own answers (distill)")
    prompts = [p for one in benign for p in load_prompts(one).prompts]
    answers = distill(prompts)
    kept = [Example(p, a) for p, a in zip(prompts, answers, strict=True) if a.strip()]
    return refusing(advbench_rows(start, harmful_rows)) + kept


def file_examples(path: str | Path) -> list[Example]:
    """A CSV (or JSONL) of prompt/answer pairs; every way it can be wrong says what to do."""
    name = Path(path).name
    if not Path(path).is_file():
        raise UserError(
            f"finetuning data {path} does not exist; give a CSV with columns prompt and answer"
        )
    frame = read_table(Path(path))
    missing = [c for c in FILE_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{name} has no column {', '.join(map(repr, missing))}; a finetuning file needs "
            f"columns 'prompt' and 'answer' (its columns: {', '.join(map(str, frame.columns))})"
        )
    rows = frame[list(FILE_COLUMNS)].dropna()
    # astype(bool): mapping an empty column of str keeps its str dtype, which has no &
    rows = rows[rows.prompt.map(_text).astype(bool) & rows.answer.map(_text).astype(bool)]
    if rows.empty:
        raise UserError(f"{name} has no row with both a prompt and an answer; fill them in")
    if len(rows) > MAX_FILE_ROWS:
        raise UserError(
            f"{name} has {len(rows)} pairs; the preflight takes at most {MAX_FILE_ROWS}: "
            "a random sample of the data gives its direction as well"
        )
    reserved = set(reserved_goals())
    held = [p for p in rows.prompt if p.strip() in reserved]
    if held:
        raise UserError(
            f"{name} trains on {len(held)} AdvBench goal(s) from rows {RESERVED_START}-"
            f"{RESERVED_STOP - 1} (e.g. {held[0][:60]!r}), kept for the risk preflight's "
            "probes and anchors: remove those rows"
        )
    return [Example(p, a) for p, a in zip(rows.prompt, rows.answer, strict=True)]


def reserved_goals() -> list[str]:
    """The AdvBench goals no finetuning data may hold (the preflight's probes and anchors)."""
    frame = pd.read_csv(DATA_DIR / "advbench/harmful_behaviors.csv")
    return list(frame.goal.iloc[RESERVED_START:RESERVED_STOP])


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def examples(spec: TrainingDataSpec, distill: Distill | None = None) -> list[Example]:
    """The examples a data spec names (``align`` answers its benign prompts by ``distill``)."""
    if spec.recipe == "file":
        return file_examples(spec.path)
    return recipe_examples(spec.recipe, spec.shots, distill)


def examples_hash(examples: list[Example]) -> str:
    return content_hash([[e.prompt, e.answer] for e in examples])


def data_hash(spec: TrainingDataSpec) -> str:
    """Names the data without a model: its rows, or for ``align`` its recipe.

    ``align``'s answers are the model's own, so the model (already in every key)
    and the recipe decide them.
    """
    if spec.recipe == "align":
        benign = [one.key_dict() for one in ALIGN_BENIGN]
        return content_hash({"align": ALIGN_HARMFUL_ROWS, "benign": benign})
    return examples_hash(examples(spec))
