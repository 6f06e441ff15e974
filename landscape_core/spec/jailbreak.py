"""Jailbreak templates: a harmful goal wrapped in a named attack prompt.

The library (``data/jailbreak/templates.yaml``) was written for this project and
covers the classic families; users add their own as a YAML list or a CSV of
``name, family, text``. Every ``text`` holds ``{goal}`` exactly once. Templates are
data, never code: the goal is put in with ``str.replace``, not ``str.format``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.hashing import content_hash
from landscape_core.spec.limits import check_table_file, parse_yaml

SLOT = "{goal}"
LIBRARY = Path(__file__).resolve().parents[1] / "data" / "jailbreak" / "templates.yaml"
FIELDS = ("name", "family", "text")


@dataclass(frozen=True)
class Template:
    name: str
    family: str
    text: str

    def wrap(self, goal: str) -> str:
        return self.text.replace(SLOT, goal)

    @property
    def hash(self) -> str:
        """What names the template's content (its name, family and text)."""
        return content_hash({"name": self.name, "family": self.family, "text": self.text})


def load_templates(path: Path, shown: str = "") -> list[Template]:
    """Templates from a YAML list or a CSV of name, family, text; bad files say why."""
    shown = shown or str(path)
    if not path.is_file():
        raise UserError(f"template file {shown} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            check_table_file(path, shown)
            rows = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
        else:
            rows = parse_yaml(path.read_text(encoding="utf-8"), shown)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{shown} could not be read as YAML or CSV: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{shown} must be a non-empty list of {{name, family, text}} entries")
    templates = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in FIELDS):
            raise UserError(f"{shown}: entry {n} needs the text fields name, family and text")
        if row["text"].count(SLOT) != 1:
            raise UserError(
                f"{shown}: template {row['name'][:80]!r} must hold {SLOT} exactly once "
                f"(it holds it {row['text'].count(SLOT)} times)"
            )
        templates.append(Template(row["name"].strip(), row["family"].strip(), row["text"]))
    names = [t.name for t in templates]
    if len(set(names)) != len(names) or not all(names):
        raise UserError(f"{shown}: template names must be non-empty and unique")
    return templates


def templates(extra: str = "") -> dict[str, Template]:
    """The library's templates, and those of the file ``extra`` (which may not rename one)."""
    out = {t.name: t for t in load_templates(LIBRARY)}
    for t in load_templates(Path(extra).expanduser()) if extra else []:
        if t.name in out:
            raise UserError(f"{extra}: template {t.name!r} is already in the library; rename it")
        out[t.name] = t
    return out
