"""The adaptive attacker's suffix: searched against its own perturbed copies.

The suffix goes after the goal in the config's template (``novel-chapter`` becomes
``novel-chapter+suffix``), trained on goals the evaluation never uses (the rows after
its window) with AdvBench's own "Sure, here is ..." targets. The result is a template
file in the store, named by a hash of everything that decided it, so a second
``defend`` reuses it; the loss curve and timing sit beside it as JSON.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from landscape_core.defence.spec import Say, ThreatModel, goals_of, members_spec
from landscape_core.engine import suffix
from landscape_core.engine.session import Session
from landscape_core.errors import UserError
from landscape_core.files import atomic_write_text
from landscape_core.hashing import content_hash
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.identity import plan
from landscape_core.spec.config import PromptSetSpec, SweepSpec
from landscape_core.spec.datasets import load_prompts
from landscape_core.spec.jailbreak import Template, load_templates, templates
from landscape_core.spec.training_data import advbench_rows
from landscape_core.store.runs import Store

MARK = "\u2063SUFFIX\u2063"  # where the suffix goes in the rendered prompt (invisible separator)
INIT = " !" * 20  # GCG's usual start
TARGET_TOKENS = 16  # the "Sure, here is ..." answer is cut to this many tokens
GENERIC_TARGET = "Sure, here is"


@dataclass(frozen=True)
class SuffixTemplate:
    path: Path  # a template file: the config's templates and the searched one
    name: str
    search: dict[str, Any]  # suffix, initial_loss, loss, losses, seconds, goals


def suffix_template(
    spec: SweepSpec, threat: ThreatModel, seeds: tuple[int, ...], store: Store, say: Say
) -> SuffixTemplate:
    """Search (or reuse) the suffix for the config's template against ``seeds``' copies."""
    base = _base_template(spec)
    train = _training_goals(spec, threat.suffix_goals)
    settings = suffix.Settings(steps=threat.suffix_steps, seed=threat.seed)
    run_id = plan(spec, store.file_digest).run_id
    key = content_hash({"run": run_id, "template": base.hash, "seeds": list(seeds),
                        "radius": threat.radius, "goals": train, "settings": vars(settings),
                        "init": INIT, "target_tokens": TARGET_TOKENS})[:16]  # fmt: skip
    path = suffix_file(store, key)
    name = f"{base.name}+suffix"
    log = path.with_suffix(".json")
    if path.is_file() and log.is_file():
        say(f"suffix search: reusing {path.name}")
        return SuffixTemplate(path, name, json.loads(log.read_text()))
    found = _search(spec, threat, seeds, base, train, settings, store, say)
    text = found["suffix"]
    extra = spec.prompts.template_file
    own = load_templates(Path(extra)) if extra else []
    searched = Template(name, "adversarial-suffix", base.text.replace("{goal}", "{goal}" + text))
    atomic_write_text(path, yaml.safe_dump([vars(t) for t in [*own, searched]], sort_keys=False))
    log.write_text(json.dumps(found, indent=1))  # last: its presence means the search finished
    return SuffixTemplate(path, name, found)


def suffix_file(store: Store, key: str) -> Path:
    """Where a searched suffix is kept: a template file named by its inputs' hash."""
    return store.root / "attacks" / f"suffix-{key}.yaml"


def _base_template(spec: SweepSpec) -> Template:
    if spec.prompts.source != "jailbreak":
        return templates()["suffix-slot"]
    return templates(spec.prompts.template_file)[spec.prompts.template]


def _training_goals(spec: SweepSpec, n: int) -> list[tuple[str, str]]:
    """(goal, target) pairs from the rows after the evaluated window: held out."""
    goals = goals_of(spec.prompts)
    start = goals.start + (goals.limit or 0)
    if goals.limit is None:
        raise UserError("defend: the suffix search trains on goals after the evaluated window; "
                        "give the goals a `limit`")  # fmt: skip
    if goals.source == "advbench":  # AdvBench's own targets, row by row
        return advbench_rows(start, n)
    train = load_prompts(replace(goals, start=start, limit=n)).prompts
    return [(goal, GENERIC_TARGET) for goal in train]


def _search(
    spec: SweepSpec,
    threat: ThreatModel,
    seeds: tuple[int, ...],
    base: Template,
    train: list[tuple[str, str]],
    settings: suffix.Settings,
    store: Store,
    say: Say,
) -> dict[str, Any]:
    """The search's result: the suffix, its loss curve and timing."""
    goals = PromptSetSpec(source="advbench")  # only names the run; the prompts come below
    copies_spec = members_spec(spec, seeds, threat.radius, goals, "suffix search")
    prompts = [base.wrap(goal + MARK) for goal, _ in train]
    session = Session.open(copies_spec, store.root, prompts)
    tokenizer = session.loaded.tokenizer
    copies = []
    for replicate in copies_spec.replicates():
        session.use_directions(replicate)
        with session.perturber() as weights:
            weights.set(threat.radius)
            copies.append(copy.deepcopy(session.loaded.model).eval())
    texts, add_special = render_prompts(
        tokenizer, tuple(prompts), spec.system_prompt, spec.model.chat_format
    )
    rows = []
    for text, (_, target) in zip(texts, train, strict=True):
        before, after = text.split(MARK)
        rows.append(suffix.Row(
            before=tokenizer(before, add_special_tokens=add_special).input_ids,
            after=tokenizer(after, add_special_tokens=False).input_ids,
            target=tokenizer(target, add_special_tokens=False).input_ids[:TARGET_TOKENS],
        ))  # fmt: skip
    init = tokenizer(INIT, add_special_tokens=False).input_ids
    vocab = copies[0].get_input_embeddings().weight.shape[0]

    def keeps_tokens(ids: list[int]) -> bool:
        return tokenizer(tokenizer.decode(ids), add_special_tokens=False).input_ids == ids

    say(f"suffix search: {settings.steps} steps, {len(train)} goals, {len(copies)} copies")
    objective = suffix.Objective(copies, rows)
    found = suffix.search(
        objective, init, suffix.allowed_tokens(tokenizer, vocab), keeps_tokens, settings,
        on_step=lambda step, loss: say(f"  step {step + 1}: loss {loss:.3f}"),
    )  # fmt: skip
    text = tokenizer.decode(found.tokens)
    say(
        f"suffix search: loss {found.initial_loss:.3f} -> {found.loss:.3f} in {found.seconds:.0f} s"
    )
    return {"suffix": text, "initial_loss": found.initial_loss, "loss": found.loss,
            "losses": found.losses, "seconds": found.seconds, "goals": train,
            "threads": torch.get_num_threads()}  # fmt: skip
