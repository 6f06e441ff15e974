"""Finetuning checkpoints: the adapters a finetune saved along the way (no torch).

``finetune`` writes ``ADAPTER/checkpoints/step-NNNNNN/`` (each atomically: an adapter
plus ``checkpoint.json``), evenly spaced and the last step included. Each names the
hash of its training data, so checkpoints of two different finetunes are never mixed
in one trajectory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from landscape_core.errors import UserError

CHECKPOINTS = "checkpoints"
RECORD = "checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    epoch: int
    loss: float
    data_hash: str  # the training examples' content hash (recipe.json's examples_hash)
    path: str = ""  # where it was read from (empty while being written)

    @property
    def directory_name(self) -> str:
        return f"step-{self.step:06d}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("path")
        return out


def read_checkpoints(adapter: Path) -> list[Checkpoint]:
    """An adapter's checkpoints in step order; a bad or mixed set says what to do."""
    recipe = adapter / "recipe.json"
    if not recipe.is_file():
        raise UserError(
            f"{adapter} is not a finished finetune (no recipe.json); give its directory"
        )
    try:
        data_hash = json.loads(recipe.read_text())["examples_hash"]
    except (ValueError, KeyError):
        raise UserError(f"{recipe} is not a finetune's recipe; train the adapter again") from None
    folders = sorted((adapter / CHECKPOINTS).glob("step-*"))
    if not folders:
        raise UserError(
            f"{adapter} has no checkpoints (it was trained before they were saved, or with "
            "checkpoints: 0); train it again with `finetune ... --out NEW_DIR`"
        )
    out = []
    for folder in folders:
        try:
            record = json.loads((folder / RECORD).read_text())
            found = Checkpoint(**record, path=str(folder))
        except (OSError, ValueError, TypeError):
            raise UserError(f"checkpoint {folder} is unreadable; train the adapter again") from None
        if found.data_hash != data_hash:
            raise UserError(
                f"checkpoint {folder.name} was trained on other data ({found.data_hash[:12]}, "
                f"the adapter's is {data_hash[:12]}); checkpoints of two finetunes are mixed"
            )
        out.append(found)
    return sorted(out, key=lambda c: c.step)


def evenly(checkpoints: list[Checkpoint], count: int) -> list[Checkpoint]:
    """The checkpoints nearest 1/count, 2/count, ..., all of training (the last included).

    By step, not by position, so a short finetune's checkpoints span its whole training
    as a long one's do; one nearest to two targets is taken once, and a tie goes to the
    earlier one. No checkpoints, or a count below 1, give none.
    """
    if not checkpoints or count < 1:
        return []
    last = max(c.step for c in checkpoints)
    nearest = [
        min(checkpoints, key=lambda c: abs(c.step - last * k / count)) for k in range(1, count + 1)
    ]
    return list(dict.fromkeys(nearest))
