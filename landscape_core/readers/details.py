"""A run's details for the Landscape page: what it is, how it was set, what it cost.

Everything here was recorded when the run was made (spec, provenance, the points'
timings); this module only gathers it, so a reviewer can see which weights, prompts
and settings stand behind a figure without opening the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from landscape_core.store.runs import Store


@dataclass(frozen=True)
class RunDetails:
    run_id: str
    labels: tuple[str, ...]
    identity: dict[str, str]  # model, its fingerprint, device, prompt set and its hash ...
    system_prompt: str  # the text the model was given, or what stood in for none
    spec: dict[str, Any]  # the settings as stored (the YAML download re-creates the run)
    packages: dict[str, str]
    created: float  # when the run was first recorded (epoch seconds)
    last_finished: float | None  # when its latest point was stored
    points: int  # in the run's grid (or probes so far, for a search)
    stored: int  # of those, with a stored result
    compute_s: float  # the stored points' own compute time, wherever they were computed
    reused: int  # stored points computed before this run existed (by another run)
    shared: int  # stored points that other runs hold too


NO_SYSTEM_TURN = "(no system turn: the chat template's own default system prompt, if any)"
EMPTY_SYSTEM_TURN = "(an empty system turn)"


def shown_system_prompt(text: str | None) -> str:
    """A run's system prompt in words, telling "no system turn" from an empty one.

    None sends no system turn, so the chat template adds its own (SmolLM2's names the
    model); an empty string sends an empty one.
    """
    if text is None:
        return NO_SYSTEM_TURN
    return text or EMPTY_SYSTEM_TURN


def run_details(store: Store, run_id: str) -> RunDetails:
    run = store.run(run_id)
    provenance = run["provenance"]
    model, prompts = provenance["model"], provenance["prompt_set"]
    origin = store.points_origin(run["run_id"])
    identity = {
        "model": model["name"],
        "model fingerprint": model["fingerprint"],
        "device / dtype": f"{model['device']} / {model['dtype']}",
        "parameters": f"{model['n_params']:,}",
        "prompt set": f"{prompts['name']} ({prompts['n_prompts']} prompts)",
        "prompt set hash": prompts["hash"],
        "directions": ", ".join(
            f"{d.get('kind', 'random')} seed {d.get('seed', '-')}" for d in provenance["directions"]
        ),
        "executor": str(provenance.get("runtime", {}).get("executor", "local")),
    }
    return RunDetails(
        run_id=run["run_id"],
        labels=tuple(run["labels"]),
        identity=identity,
        system_prompt=shown_system_prompt(provenance["system_prompt"]),
        spec=run["spec"],
        packages=_packages(store, run["run_id"], provenance),
        created=run["created"],
        last_finished=None if origin.empty else float(origin.finished.max()),
        points=run["n_points"],
        stored=len(origin),
        compute_s=float(origin.seconds.sum()),
        reused=int((origin.finished < run["created"]).sum()),
        shared=int((origin.other_runs > 0).sum()),
    )


def _packages(store: Store, run_id: str, provenance: dict[str, Any]) -> dict[str, str]:
    """The run's packages, a package its points hold several versions of marked mixed.

    Each such version is shown with its point count (a resume accepted them). The
    provenance holds the first process's; each point holds its own.
    """
    packages = {k: str(v) for k, v in provenance.get("packages", {}).items()}
    counts: dict[str, dict[str, int]] = {}
    for row in store.run_versions(run_id).itertuples():
        if row.versions is None:
            continue  # stored before points recorded their versions
        for name, value in json.loads(row.versions).items():
            by_value = counts.setdefault(name, {})
            by_value[value] = by_value.get(value, 0) + int(row.points)
    for name, by_value in counts.items():
        if len(by_value) > 1:
            shown = ", ".join(f"{v} ({n} points)" for v, n in sorted(by_value.items()))
            packages[name] = f"{shown} (mixed)"
    return packages
