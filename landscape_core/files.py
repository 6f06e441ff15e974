"""Writing a file so that a stopped or concurrent writer never leaves half of one.

The text goes to a uniquely named temporary file beside the target, which then replaces
it in one step (``os.replace``): a reader sees the old file or the new one. Two writers
of the same file each use their own temporary, and a failed write removes its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """``path.write_text(text)`` in UTF-8, all or nothing (its folder is made if missing)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, all or nothing (its folder is made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
