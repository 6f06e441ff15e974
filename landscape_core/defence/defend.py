"""``defend CONFIG``: the perturbed-ensemble defence and the adaptive attack on it.

The paper's section 6: a jailbreak that works on the model often fails on its
perturbed neighbours, so answering with perturbed copies is a defence, and an
attacker who knows the defence adapts by attacking perturbed copies of its own.

Every answer comes from ``sweep.run`` on a members run (``defence.spec``), so members
are cached points: running ``defend`` again generates nothing and rebuilds the same
report from the store. Only the suffix search (``suffix_steps`` > 0) loads a model
outside a sweep, and its result is kept as a template file keyed by its inputs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from landscape_core import sweep
from landscape_core.defence.report import DefenceReport, MembersRun, members_run, report
from landscape_core.defence.spec import (
    Say,
    ThreatModel,
    benign_sets,
    candidate_sets,
    defence_id,
    defence_spec,
    members_spec,
)
from landscape_core.errors import Cancelled
from landscape_core.executors import ShouldStop
from landscape_core.plan.identity import plan
from landscape_core.spec.config import PromptSetSpec, SweepSpec
from landscape_core.store.runs import Store

log = logging.getLogger(__name__)
SEED_RANGE = 2**31  # the attacker draws its direction seeds from [0, 2**31)

Compute = Callable[[SweepSpec], str]  # computes (or finds) a sweep's points; its run id


def attacker_seeds(threat: ThreatModel) -> tuple[int, ...]:
    """The attacker's own perturbations: drawn from its seed, blind to the defender's."""
    return tuple(random.Random(threat.seed).sample(range(SEED_RANGE), threat.samples))


def attack(
    spec: SweepSpec,
    threat: ThreatModel,
    candidates: dict[str, PromptSetSpec],
    compute: Compute,
    store: Store,
) -> dict[str, MembersRun]:
    """The attacker's samples of every candidate template: what it chooses from.

    It is given the threat model, never the defence itself, so it cannot use the
    defender's seeds.
    """
    seeds = attacker_seeds(threat)
    return {
        name: members_run(
            store,
            compute(members_spec(spec, seeds, threat.radius, prompts, f"attack samples: {name}")),
            threat.radius,
        )
        for name, prompts in candidates.items()
    }


def run(
    spec: SweepSpec,
    store: Store,
    say: Say = log.info,
    should_stop: ShouldStop = None,
) -> DefenceReport:
    """Compute what the defence needs (cached points are reused), report it and store it.

    The attacker's steps get the config without its ``defend`` section (the threat
    model says what it knows), so no seed of the defender's can reach them.
    """
    defence = defence_spec(spec)
    runs: dict[str, str] = {}
    compute = _computer(store, say, should_stop, runs)
    threat = ThreatModel.of(defence)
    target = replace(spec, defend=None)
    searched: dict[str, Any] = {}
    extra, also = "", ()
    if threat.suffix_steps:
        # torch, and a model outside a sweep: only when a suffix is asked for
        from landscape_core.defence.suffix_attack import suffix_template

        found = suffix_template(target, threat, attacker_seeds(threat), store, say)
        searched, extra, also = found.search, str(found.path), (found.name,)
    candidates = candidate_sets(spec, defence, extra, also)
    attacker = attack(target, threat, candidates, compute, store)

    name, attack_set = _attack_set(spec, candidates)
    defended_sets = {**candidates, name: attack_set}

    def defended(label: str, prompts: PromptSetSpec) -> MembersRun:
        run_id = compute(members_spec(spec, defence.seeds(), defence.radius, prompts,
                                      f"defence members: {label}"))  # fmt: skip
        return members_run(store, run_id, defence.radius)

    defender = {label: defended(label, prompts) for label, prompts in defended_sets.items()}
    benign = {label: defended(label, prompts) for label, prompts in benign_sets(defence).items()}
    out = report(
        defence.to_dict(), name, defence.vote, defender, attacker,
        safe=benign["over_refusal"], fluency=benign["perplexity"],
    )  # fmt: skip
    out.runs, out.suffix_search = runs, searched  # every run it read, by label
    attacked = plan(spec, store.file_digest).run_id
    store.defences.save(defence_id(attacked, defence), spec.label, spec.to_dict(), out.to_dict())
    return out


def _attack_set(spec: SweepSpec, candidates: dict[str, PromptSetSpec]) -> tuple[str, PromptSetSpec]:
    """The non-adaptive attack: the config's own prompt set, by its template's name."""
    if spec.prompts.source != "jailbreak":
        return "plain", spec.prompts
    name = spec.prompts.template
    return name, candidates.get(name, spec.prompts)


def _computer(store: Store, say: Say, should_stop: ShouldStop, runs: dict[str, str]) -> Compute:
    """Runs a sweep (or finds it stored), and notes its run id in ``runs`` by label."""

    def compute(member_spec: SweepSpec) -> str:
        summary = sweep.run(member_spec, store, should_stop=should_stop)
        if summary.status == "cancelled":
            raise Cancelled
        runs[member_spec.label] = summary.run_id
        say(f"{member_spec.label}: run {summary.run_id}, {summary.computed} point(s) "
            f"computed in {summary.seconds:.0f} s")  # fmt: skip
        return summary.run_id

    return compute
