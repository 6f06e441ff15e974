"""The sweeps a perturbed-ensemble defence is made of, named without loading a model.

A member is an ordinary point: the model at alpha = radius along one seeded random
direction. A defence over one prompt set is therefore one multi-seed 1D run whose
grid is ``[0, radius]``: its alpha = 0 point is the undefended model (shared with every
run of that model and set), and its other points are the members. The attacker's
samples are the same kind of run with seeds of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from landscape_core.errors import UserError
from landscape_core.hashing import content_hash
from landscape_core.spec.config import (
    AxisSpec,
    BasinSpec,
    DefenceSpec,
    DirectionSpec,
    PromptSetSpec,
    SweepSpec,
)
from landscape_core.spec.jailbreak import templates

# over-refusal: refusing these is a cost; the held-out half (the aligned demo trained on
# the other)
SAFE = PromptSetSpec(source="xstest", subset="safe", split="heldout")
FLUENCY = PromptSetSpec(source="mt_bench")  # fluency: perplexity of the answers
Say = Callable[[str], None]  # where a long computation reports its steps


@dataclass(frozen=True)
class ThreatModel:
    """What the adaptive attacker knows of the defence: everything but its seeds."""

    members: int
    radius: float
    vote: str
    samples: int  # perturbations it draws itself
    seed: int  # the attacker's own seed, from which it draws them
    suffix_steps: int = 0  # its suffix search's budget (0: none)
    suffix_goals: int = 8

    @classmethod
    def of(cls, defence: DefenceSpec) -> ThreatModel:
        return cls(defence.members, defence.radius, defence.vote, defence.samples,
                   defence.attack_seed, defence.suffix_steps, defence.suffix_goals)  # fmt: skip


def defence_spec(spec: SweepSpec) -> DefenceSpec:
    """The config's ``defend`` section, or a message saying how to add one."""
    if spec.defend is None:
        raise UserError(
            "the config has no `defend:` section; add one, e.g. "
            "defend: {members: 5, radius: 0.05, seed: 1000, vote: majority}"
        )
    if spec.measure not in ("answers", "basin-radius"):
        raise UserError(f"defend needs a config that generates answers, not measure {spec.measure}")
    return spec.defend


def members_spec(
    spec: SweepSpec, seeds: tuple[int, ...], radius: float, prompts: PromptSetSpec, label: str
) -> SweepSpec:
    """The run of the model and its perturbed copies (one per seed) on ``prompts``.

    The copies use the config's normalisation and skip list when its first direction
    is random, and the paper's (layer, norms skipped) otherwise.
    """
    first = spec.directions[0]
    shape = {"norm": first.norm, "skip": first.skip} if first.kind == "random" else {}
    direction = DirectionSpec(kind="random", seeds=seeds, **shape)
    grid = AxisSpec(start=0.0, stop=radius, num=2 if radius > 0 else 1)
    return replace(
        spec, prompts=prompts, directions=(direction,), grid=(grid,), measure="answers",
        basin=BasinSpec(), defend=None, label=label,
    )  # fmt: skip


def goals_of(prompts: PromptSetSpec) -> PromptSetSpec:
    """The harmful goals a prompt set asks for: a jailbreak's goals, or the set itself."""
    if prompts.source != "jailbreak":
        return prompts
    goals = prompts.goals or PromptSetSpec()
    return replace(goals, start=goals.start + prompts.start,
                   limit=_window_limit(goals.limit, prompts.start, prompts.limit))  # fmt: skip


def _window_limit(outer: int | None, start: int, inner: int | None) -> int | None:
    if outer is None:
        return inner
    left = max(outer - start, 1)
    return left if inner is None else min(left, inner)


def candidate_sets(
    spec: SweepSpec, defence: DefenceSpec, extra: str = "", also: tuple[str, ...] = ()
) -> dict[str, PromptSetSpec]:
    """The jailbreak sets the adaptive attacker chooses among, by template name.

    Each wraps the config's goals. ``extra`` is a template file that replaces the
    config's (the suffix search writes one holding the config's and its own), and
    ``also`` names templates of it that are candidates whatever ``attack_templates`` says.
    """
    template_file = extra or spec.prompts.template_file
    library = templates(template_file)
    names = defence.attack_templates or tuple(library)
    names = (*names, *(n for n in also if n not in names))
    unknown = [n for n in names if n not in library]
    if unknown:
        raise UserError(
            f"defend: unknown attack template(s) {', '.join(unknown)}; "
            "`python -m landscape_core templates` lists them"
        )
    goals = goals_of(spec.prompts)
    return {
        name: PromptSetSpec(
            source="jailbreak",
            template=name,
            template_file=template_file,
            goals=goals,
            start=0,
            limit=None,
        )  # fmt: skip
        for name in names
    }


def benign_sets(defence: DefenceSpec) -> dict[str, PromptSetSpec]:
    """Where the defence's costs are measured: XSTest's safe prompts and MT-Bench."""
    limit = defence.benign_limit
    return {"over_refusal": replace(SAFE, limit=limit), "perplexity": replace(FLUENCY, limit=limit)}


def defence_id(run_id: str, defence: DefenceSpec) -> str:
    """Names a defence report: the attacked run (model files, spec) and the defence."""
    return content_hash({"run": run_id, "defend": defence.key_dict()})[:16]
