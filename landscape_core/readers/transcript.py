"""One answer's transcript: the chat as the model read it, the answer, every verdict.

What Inspect's sample view shows: a reviewer who doubts a verdict needs the exact
text the model was given (system prompt, chat template, special tokens written out),
not only the user's prompt. The prompt is rendered again from the model's own
tokenizer files, torch-free, through ``plan.tokens`` (the template runs in its bounded
child process), with the run's system prompt and chat format, as the engine renders
it. Everything here is text for ``st.text``/``st.code``: model output is untrusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.judging.verdict import is_harmful, is_unparsed
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.model_files import bundled_copy, model_dir
from landscape_core.plan.tokens import file_tokenizer
from landscape_core.readers.details import shown_system_prompt
from landscape_core.readers.results import answer_states
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store


@dataclass(frozen=True)
class RenderedPrompt:
    text: str | None  # what the model read, special tokens as text; None: not renderable
    note: str  # how it was rendered, or why it could not be


@dataclass(frozen=True)
class JudgeVerdict:
    judge: str
    verdict: str  # refused, complied, partial, harmful, unparsed (not counted), not scored
    matched: str  # the answer's own text that decided it; '' when none
    evidence: str  # the judge's reason


@dataclass(frozen=True)
class Transcript:
    run_id: str
    point_key: str
    prompt_index: int
    alpha: float
    beta: float
    system_prompt: str  # in words: "no system turn" is told from an empty one
    prompt: str  # the user turn as stored (a jailbreak's wrapped prompt)
    rendered: RenderedPrompt
    answer: str
    n_tokens: int
    stop_reason: str
    verdicts: tuple[JudgeVerdict, ...]
    state: str | None  # under the run's first judge; None until scored
    measures: dict[str, float]  # coherence_nll, repetition, ... (absent: not measured)


def verdict_label(refused: Any, evidence: Any) -> str:
    """A verdict in words, as the pages name it (partial, harmful and unparsed too)."""
    if is_unparsed(evidence):
        return "unparsed (not counted)"
    if is_harmful(evidence):
        return "harmful"
    if refused is None or pd.isna(refused):
        return "not scored"
    if isinstance(evidence, str) and evidence.startswith("partial refusal"):
        return "partial"
    return "refused" if int(refused) else "complied"


def render_for_run(store: Store, run: dict[str, Any], prompt: str) -> RenderedPrompt:
    """``prompt`` as the run's model read it, rendered now from the model's files.

    A raw chat format's tokens the tokenizer adds itself (a BOS) are written out too.
    Files moved or deleted since the run give a note saying so, never an error.
    """
    spec = SweepSpec.from_dict(run["spec"])
    try:
        root = model_dir(spec.model)
        if spec.model.kind == "bundled":  # the engine reads the converted copy's tokenizer
            root = bundled_copy(store.models_dir) or root
        tokenizer = file_tokenizer(Path(root))
        if tokenizer is None:
            return RenderedPrompt(
                None, f"{root} has no tokenizer this app can read without loading the model"
            )
        texts, add_special = render_prompts(
            tokenizer, (prompt,), spec.system_prompt, spec.model.chat_format
        )
    except UserError as exc:
        return RenderedPrompt(None, f"cannot render the prompt now: {exc}")
    text = texts[0]
    how = (
        "the model's chat template"
        if spec.model.chat_format == "auto" and tokenizer.chat_template
        else f"the {spec.model.chat_format} format"
    )
    note = f"rendered now with {how} from {root}"
    if add_special:
        before, after = tokenizer.added_specials(text)
        text = f"{before}{text}{after}"
        if before or after:
            note += "; the tokenizer's own special tokens are written out"
    return RenderedPrompt(text, note)


def transcript(store: Store, run_id: str, point_key: str, prompt_index: int) -> Transcript:
    """One answer of a run with everything said about it."""
    run = store.run(run_id)
    judges = store.judges(run["run_id"])
    gens = store.generations_frame(run["run_id"], judges[0] if judges else "keyword")
    rows = gens[(gens.point_key == point_key) & (gens.prompt_index == int(prompt_index))]
    if rows.empty:
        raise UserError(
            f"run {run['run_id'][:8]} has no stored answer to prompt {prompt_index} at "
            f"point {point_key[:12]}; open the run's answers and pick one"
        )
    row = rows.iloc[0]
    scores = store.answer_scores(point_key, int(prompt_index))
    verdicts = tuple(
        JudgeVerdict(
            judge=s.judge,
            verdict=verdict_label(s.refused, s.evidence),
            matched=s.matched if isinstance(s.matched, str) else "",
            evidence=s.evidence if isinstance(s.evidence, str) else "",
        )
        for s in scores.itertuples()
    )
    state = answer_states(rows.head(1)).iloc[0] if judges else None
    return Transcript(
        run_id=run["run_id"],
        point_key=point_key,
        prompt_index=int(prompt_index),
        alpha=float(row.alpha),
        beta=float(row.beta),
        system_prompt=shown_system_prompt(run["provenance"]["system_prompt"]),
        prompt=row.prompt,
        rendered=render_for_run(store, run, row.prompt),
        answer=row.text,
        n_tokens=int(row.n_tokens),
        stop_reason=str(row.stop_reason),
        verdicts=verdicts,
        state=state,
        measures=store.answer_measures(point_key, int(prompt_index)),
    )


def transcript_text(t: Transcript) -> str:
    """The transcript as one plain-text document (the page's download)."""
    lines = [
        f"run {t.run_id}",
        f"point {t.point_key} (alpha={t.alpha:+.3f} beta={t.beta:+.3f}), prompt {t.prompt_index}",
        "",
        "== system prompt ==",
        t.system_prompt,
        "",
        "== the prompt as the model read it ==",
        t.rendered.text if t.rendered.text is not None else t.prompt,
        f"({t.rendered.note})",
        "",
        f"== answer ({t.n_tokens} tokens, stopped: {t.stop_reason}) ==",
        t.answer,
        "",
        "== verdicts ==",
        *(f"{v.judge}: {v.verdict} ({v.evidence})" for v in t.verdicts),
        "",
        f"state: {t.state or 'not measured'}",
        *(f"{name}: {value:.4g}" for name, value in sorted(t.measures.items())),
    ]
    return "\n".join(lines) + "\n"
