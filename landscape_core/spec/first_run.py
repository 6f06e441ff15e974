"""The default run: the Launch form's starting values and the Start page's one button.

One spec for both, so the form a user edits and the run a first visit queues cannot
drift apart. A data directory may hold its own (``first-run.yaml``, a sweep config):
a lab's usual model, or a test's tiny one. Torch-free: the pages read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landscape_core.errors import UserError
from landscape_core.spec.config import SweepSpec, load_yaml

FIRST_RUN_FILE = "first-run.yaml"  # in the data directory; replaces DEFAULT when present

# The aligned demo's basin and its fall (about |alpha| < 0.15, then refusals give way),
# on a few minutes of CPU: 13 points x 20 AdvBench prompts x 32 new tokens.
DEFAULT: dict[str, Any] = {
    "label": "sweep",
    "model": {"kind": "bundled", "variant": "aligned"},
    "system_prompt": {"preset": "default"},
    "prompts": {"source": "advbench", "limit": 20},
    "directions": [{"kind": "random", "seed": 123, "norm": "layer"}],
    "grid": [{"start": -0.3, "stop": 0.3, "num": 13}],
    "generation": {"max_new_tokens": 32, "stop": "eos"},
    "measure": "answers",
    "judges": [{"name": "keyword"}],
}


def first_run(store_root: Path) -> SweepSpec:
    """The data directory's ``first-run.yaml`` if it has one, else ``DEFAULT``.

    Paths in the file are relative to it; the spec's paths come back absolute, as the
    worker (elsewhere) needs them. A bad file is a UserError naming it.
    """
    path = Path(store_root) / FIRST_RUN_FILE
    if path.is_file():
        try:
            return SweepSpec.from_dict(load_yaml(path)).resolve_paths(path.parent)
        except UserError as exc:
            raise UserError(f"{path}, the first run: {exc}; correct it or remove it") from None
    return SweepSpec.from_dict(DEFAULT).resolve_paths(Path.cwd())


def describe(spec: SweepSpec, n_prompts: int) -> dict[str, str]:
    """What the run does, by part, in words for a first visit (no field names)."""
    axes = " x ".join(
        f"{axis.num} points of {name} from {axis.start:g} to {axis.stop:g}"
        for axis, name in zip(spec.grid, ("alpha", "beta"), strict=False)
    )
    directions = []
    for d in spec.directions:
        if d.kind == "random":
            seeds = d.seed_list()
            which = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds"
            directions.append(f"random ({which}, {d.norm} normalised)")
        elif d.kind == "interpolation" and d.target is not None:
            directions.append(f"toward {d.target.display_name}")
        else:
            directions.append(d.kind)
    judges = ", ".join(j.name for j in spec.judges)
    return {
        "Model": spec.model.display_name,
        "Prompts": f"{n_prompts} from {spec.prompts.source} "
        f"(system prompt: {spec.system_prompt.preset})",
        "Directions": "; ".join(directions),
        "Grid": axes or "the basin's edges, by bisection",
        "Answers": f"up to {spec.generation.max_new_tokens} new tokens each, judged by {judges}",
    }
