"""Guard models as judges: Llama Guard 3, Qwen3Guard-Gen, HarmBench's classifier, WildGuard.

Each is prompted with its published text (``guard_formats``), decoded greedily, and its
reply parsed into refused, complied, harmful, or unparsed. A model whose own chat
template is its format (Llama Guard 3, Qwen3Guard) has that template checked against
the transcription on every answer: a mismatch is refused with where they differ, so a
wrong checkpoint or a changed template never scores silently with the wrong prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from jinja2 import TemplateError

from landscape_core.engine.decoder import generate
from landscape_core.engine.models import load_model
from landscape_core.errors import UserError
from landscape_core.judging.guard_formats import GUARD_FORMATS
from landscape_core.judging.verdict import Verdict
from landscape_core.spec.config import GenerationSpec, JudgeSpec

log = logging.getLogger(__name__)

JUDGE_BATCH = 16
TEMPLATE_GUARDS = ("llama-guard-3", "qwen3guard")  # their chat template is their format


def first_difference(ours: str, theirs: str) -> str:
    """Where two renderings part, for a reader."""
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
    at = min(len(ours), len(theirs)) if at is None else at
    return (
        f"at character {at}: the model's template gives {theirs[at : at + 40]!r}, "
        f"the published format {ours[at : at + 40]!r}"
    )


class GuardJudge:
    """One guard model, by the judge's name; ``path`` names its local files."""

    def __init__(self, spec: JudgeSpec, models_dir: Path | None = None) -> None:
        self.name = spec.name
        self.format = GUARD_FORMATS[spec.name]
        self.loaded = load_model(spec.model(), models_dir or Path())
        self.variants: tuple[Callable[[str, str], str], ...] = self.format.renders
        template = getattr(self.loaded.tokenizer, "chat_template", None)
        self.check_template = spec.name in TEMPLATE_GUARDS and bool(template)
        if spec.name in TEMPLATE_GUARDS and not template:
            log.warning(
                "%s: %s has no chat template to check the prompt against; using the "
                "published format (%s's first variant)",
                spec.name,
                spec.path,
                spec.name,
            )

    def _template_renderings(self, prompt: str, answer: str) -> list[str]:
        """The model's own template on [user, assistant], content as text or as parts.

        Llama Guard 3 8B reads string content; the 1B reads a list of typed parts.
        """
        out = []
        for shape in (str, lambda t: [{"type": "text", "text": t}]):
            chat = [
                {"role": "user", "content": shape(prompt)},
                {"role": "assistant", "content": shape(answer)},
            ]
            try:
                out.append(self.loaded.tokenizer.apply_chat_template(chat, tokenize=False))
            except (TemplateError, TypeError, ValueError):
                continue  # this shape is not the template's
        return out

    def render(self, prompt: str, answer: str) -> str:
        """The guard's prompt for one answer, checked against the model's template."""
        ours = [render(prompt, answer) for render in self.variants]
        if not self.check_template:
            return ours[0]
        theirs = self._template_renderings(prompt, answer)
        for i, text in enumerate(ours):
            if text in theirs:
                self.variants = (self.variants[i],)  # the checkpoint's variant, from now on
                return text
        where = first_difference(ours[0], theirs[0]) if theirs else "it did not render"
        raise UserError(
            f"{self.name}: the model's chat template does not render the published "
            f"{self.name} prompt ({where}); is the path a {self.name} checkpoint?"
        )

    def score(self, prompt: str, generation: str) -> Verdict:
        return self.score_batch([prompt], [generation])[0]

    def score_batch(self, prompts: list[str], generations: list[str]) -> list[Verdict]:
        if not generations:
            return []
        texts = [self.render(p, g) for p, g in zip(prompts, generations, strict=True)]
        replies = generate(
            self.loaded.model,
            self.loaded.tokenizer,
            texts,
            GenerationSpec(max_new_tokens=self.format.max_new_tokens),
            batch_size=JUDGE_BATCH,
            add_special_tokens=self.format.add_special_tokens,
        )
        return [self.format.parse(reply.text) for reply in replies]
