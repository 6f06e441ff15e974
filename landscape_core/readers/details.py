"""A run's details for the Landscape page: what it is, how it was set, what it cost.

Everything here was recorded when the run was made (spec, provenance, the points'
timings); this module only gathers it, so a reviewer can see which weights, prompts
and settings stand behind a figure without opening the store.
"""

from __future__ import annotations

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
        packages={k: str(v) for k, v in provenance.get("packages", {}).items()},
        created=run["created"],
        last_finished=None if origin.empty else float(origin.finished.max()),
        points=run["n_points"],
        stored=len(origin),
        compute_s=float(origin.seconds.sum()),
        reused=int((origin.finished < run["created"]).sum()),
        shared=int((origin.other_runs > 0).sum()),
    )
