"""Judges made by name, from the one table in ``spec.judges``.

A model judge's module (torch) is imported only when that judge is made, so text
judges and their callers stay torch-free.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from landscape_core.errors import UserError
from landscape_core.judging.verdict import Judge
from landscape_core.spec.config import JudgeSpec
from landscape_core.spec.judges import entry


def make_judge(spec: JudgeSpec, models_dir: Path | None = None) -> Judge:
    """The judge a spec names; an unknown name lists the known ones.

    Text judges take no arguments; model judges take their spec and ``models_dir``,
    the store's, where the bundled model's safetensors copy lives (``llm-judge``
    without a path judges with the bundled model and needs it).
    """
    found = entry(spec.name)
    if found.kind == "sweep-only":
        raise UserError(f"{spec.name} is no judge of stored answers: {found.decides}")
    module, attribute = found.factory.split(":")
    factory = getattr(importlib.import_module(module), attribute)
    return factory() if found.kind == "text" else factory(spec, models_dir)
