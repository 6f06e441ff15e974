"""Prompt sets: the vendored benchmarks and user CSV/JSONL files.

A prompt set is a tuple of strings with a content hash; the hash enters every point
key, so editing a file can never be mistaken for the set that was swept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.hashing import content_hash
from landscape_core.spec.config import PromptSetSpec
from landscape_core.spec.jailbreak import templates
from landscape_core.spec.limits import check_columns, check_table_file, parse_json

DATA_DIR = Path(__file__).resolve().parents[1] / "data"  # package data, vendored

_BUILTIN = {
    "advbench": ("advbench/harmful_behaviors.csv", "goal"),
    "xstest": ("xstest/xstest_prompts.csv", "prompt"),
    "benign": ("benign/instructions.csv", "prompt"),
}


@dataclass(frozen=True)
class PromptSet:
    prompts: tuple[str, ...]
    name: str
    answers: tuple[str, ...] = ()  # multiple choice: each prompt's correct letter

    @property
    def hash(self) -> str:
        if self.answers:  # the key of a multiple-choice set decides its accuracy
            return content_hash([list(self.prompts), list(self.answers)])
        return content_hash(list(self.prompts))


LETTERS = ("A", "B", "C", "D")


def mmlu_prompts(spec: PromptSetSpec, data_dir: Path = DATA_DIR) -> PromptSet:
    """k-shot MMLU prompts in the original format, shots from the file's first rows."""
    path = data_dir / "mmlu" / f"{spec.subject}_test.csv"
    frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    if frame.shape[1] != 6 or not frame[5].isin(LETTERS).all():
        raise UserError(f"{path} is not MMLU's layout: question, A, B, C, D, answer letter")
    subject = spec.subject.replace("_", " ")
    head = f"The following are multiple choice questions (with answers) about {subject}.\n\n"

    def question(row: pd.Series, answer: bool) -> str:
        choices = "".join(f"{letter}. {row[k + 1]}\n" for k, letter in enumerate(LETTERS))
        return f"{row[0]}\n{choices}Answer:" + (f" {row[5]}\n\n" if answer else "")

    shots = "".join(question(frame.iloc[k], True) for k in range(spec.shots))
    scored = frame.iloc[spec.shots :]
    stop = None if spec.limit is None else spec.start + spec.limit
    scored = scored.iloc[spec.start : stop]
    if scored.empty:
        raise UserError(f"MMLU {subject} has no questions for start={spec.start}")
    return PromptSet(
        prompts=tuple(head + shots + question(r, False) for _, r in scored.iterrows()),
        name=f"MMLU {subject} ({spec.shots}-shot, shots from its first rows)",
        answers=tuple(scored[5]),
    )


def load_prompts(spec: PromptSetSpec, data_dir: Path = DATA_DIR) -> PromptSet:
    """Read the rows a spec names; an empty result is an error that says why."""
    if spec.source == "mmlu":
        return mmlu_prompts(spec, data_dir)
    if spec.source == "jailbreak":
        return jailbreak_prompts(spec, data_dir)
    if spec.source == "mt_bench":
        rows = _read_jsonl(data_dir / "mt_bench/question.jsonl")
        texts = [r["turns"][0] for r in rows]
        name = "MT-Bench turn 1"
    elif spec.source in _BUILTIN:
        rel, column = _BUILTIN[spec.source]
        frame = read_table(data_dir / rel)
        if spec.subset != "all":
            frame = frame[frame["label"] == spec.subset]
        texts = frame[column].tolist()
        name = {"advbench": "AdvBench", "xstest": "XSTest", "benign": "benign instructions"}[
            spec.source
        ]
    else:
        frame = read_table(Path(spec.path))
        if spec.column not in frame.columns:
            raise UserError(
                f"{spec.path} has no column {spec.column!r}; "
                f"its columns are: {', '.join(map(str, frame.columns))}"
            )
        name = Path(spec.path).name
        if spec.column not in text_columns(frame):
            raise UserError(
                f"column {spec.column!r} of {name} holds no text (numbers or empty cells "
                "only); choose the column that holds the prompts"
            )
        texts = frame[spec.column].tolist()
    if spec.split != "all":
        texts = texts[0 if spec.split == "train" else 1 :: 2]
    stop = None if spec.limit is None else spec.start + spec.limit
    texts = [t for t in texts[spec.start : stop] if isinstance(t, str) and t.strip()]
    if not texts:
        raise UserError(
            f"prompt set {name} is empty for start={spec.start}, limit={spec.limit}: "
            "check the file has non-empty text in that column and rows in that range"
        )
    return PromptSet(prompts=tuple(texts), name=name)


def jailbreak_prompts(spec: PromptSetSpec, data_dir: Path = DATA_DIR) -> PromptSet:
    """Each goal wrapped in the spec's template; the template's text enters the set's hash."""
    library = templates(spec.template_file)
    if spec.template not in library:
        raise UserError(
            f"prompts: no jailbreak template {spec.template!r}; "
            f"`python -m landscape_core templates` lists them: {', '.join(library)}"
        )
    template = library[spec.template]
    goals = load_prompts(spec.goals or PromptSetSpec(), data_dir)
    wrapped = tuple(template.wrap(goal) for goal in _window(spec, goals.prompts))
    if not wrapped:
        raise UserError(
            f"prompt set {goals.name} has no goals for start={spec.start}, limit={spec.limit}"
        )
    return PromptSet(
        prompts=wrapped, name=f"{goals.name} in the {template.name} jailbreak ({template.family})"
    )


def jailbreak_goals(spec: PromptSetSpec, data_dir: Path = DATA_DIR) -> tuple[str, ...]:
    """The goals a jailbreak set wraps, by prompt index (the Generations page shows them)."""
    return _window(spec, load_prompts(spec.goals or PromptSetSpec(), data_dir).prompts)


def _window(spec: PromptSetSpec, items: tuple[str, ...]) -> tuple[str, ...]:
    stop = None if spec.limit is None else spec.start + spec.limit
    return items[spec.start : stop]


def text_columns(frame: pd.DataFrame) -> dict[str, int]:
    """The columns that can be prompts, with their count of non-empty text cells.

    A column of numbers only (ids, scores, labels 0/1) is no prompt set: its numbers
    would be sent to the model as prompts.
    """
    out = {}
    for column in frame.columns:
        texts = [v for v in frame[column] if isinstance(v, str) and v.strip()]
        numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").notna()
        if texts and not numbers.all():
            out[str(column)] = len(texts)
    return out


def read_table(path: Path, shown: str = "") -> pd.DataFrame:
    """A CSV or JSONL file as data (never executed, never unpickled).

    ``shown`` is the name messages use (an upload's own name, not its stored one).
    """
    shown = shown or str(path)
    if not path.is_file():
        raise UserError(f"prompt file {shown} does not exist")
    check_table_file(path, shown)  # before pandas: bounded lines and columns
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            return pd.DataFrame(_read_jsonl(path, shown))
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise UserError(f"{shown} could not be parsed as CSV/JSONL: {exc}") from None


def _read_jsonl(path: Path, shown: str = "") -> list[dict]:
    """The rows of a JSONL file; their keys are its columns, bounded like a CSV's."""
    shown = shown or str(path)
    rows = []
    columns: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json(line, f"{shown}:{n}")
        if not isinstance(row, dict):
            raise UserError(
                f'{shown}:{n}: each JSONL line must be an object, like {{"prompt": ...}}'
            )
        columns.update(row)
        check_columns(len(columns), shown)
        rows.append(row)
    return rows
