"""Uploaded prompts and finetuning data: kept by content hash, pruned when unused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from landscape_core.errors import UserError
from landscape_core.files import atomic_write_bytes
from landscape_core.spec.datasets import read_table, text_columns
from landscape_core.store.database import Database

UPLOADS_DIR = "uploads"
SUFFIXES = (".csv", ".jsonl")
PREVIEW_ROWS = 5


@dataclass(frozen=True)
class Upload:
    path: Path  # stored under its content hash: the same file is kept once
    name: str  # the user's own file name, for messages
    columns: dict[str, int]  # the columns of text that can be prompts, with their row counts
    preview: list[dict[str, str]]  # the first rows, as text, to show before a launch


def save_upload(db: Database, name: str, data: bytes) -> Upload:
    """Store an uploaded CSV/JSONL and read its columns; a bad file is a UserError."""
    suffix = ".jsonl" if name.lower().endswith(".jsonl") else ".csv"
    path = db.root / UPLOADS_DIR / (hashlib.sha256(data).hexdigest()[:16] + suffix)
    if not path.is_file():  # kept as data: parsed by pandas/json, never executed
        atomic_write_bytes(path, data)
    frame = read_table(path, shown=name)
    columns = text_columns(frame)
    if not columns:
        raise UserError(
            f"{name} has no column of text ({len(frame)} rows; columns: "
            f"{', '.join(map(str, frame.columns)) or 'none'}): upload a CSV or JSONL file "
            "with one column of prompts"
        )
    preview = frame.head(PREVIEW_ROWS).astype(str).to_dict("records")
    return Upload(path, name, columns, preview)


def prune_uploads(db: Database, keep: Path | None = None) -> list[Path]:
    """Delete uploads that no run or job names (and that are not ``keep``)."""
    folder = db.root / UPLOADS_DIR
    if not folder.is_dir():
        return []
    with db.connect() as conn:
        specs = conn.execute("SELECT spec_json FROM runs UNION ALL SELECT spec_json FROM jobs")
        used = {path for (text,) in specs for path in _paths(text)}
    removed = []
    for path in folder.iterdir():
        if path.suffix in SUFFIXES and str(path) not in used and path != keep:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _paths(spec_json: str) -> set[str]:
    """The files a stored spec reads: its prompts, and its gradient directions' data."""
    try:
        spec = json.loads(spec_json)
        paths = {spec.get("prompts", {}).get("path", "")}
        paths |= {(d.get("data") or {}).get("path", "") for d in spec.get("directions", [])}
    except (ValueError, AttributeError, TypeError):
        return set()
    return {str(p) for p in paths if p}
