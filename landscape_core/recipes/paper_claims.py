"""The claims table of ``docs/paper-mini.md``: each finding of the paper, one verdict.

A finding predicts the sign of a difference A - B (``intervals.Predicted``); the
miniature's evidence is that difference's 95% interval, paired where the two arms share
their draws (directions, goals), and ``intervals.read_claim`` turns it into supported,
contradicted or not shown. Nothing here decides by looking at two separate intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from landscape_core.basin.intervals import (
    MIN_DIRECTIONS,
    Interval,
    Predicted,
    Reading,
    read_claim,
    widened,
)
from landscape_core.readers.breakage import ASR_EDGE, FLUENCY_RISE, Breakage
from landscape_core.readers.results import compare_visage
from landscape_core.recipes.paper_records import Experiment, Paper
from landscape_core.store.runs import Store

PENDING = "its runs are not stored yet"
BREAKAGE = "fluency edge - ASR edge"
WHAT = {"higher": "A - B > 0", "lower": "A - B < 0", "different": "A - B != 0",
        "same": "A - B = 0"}  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One finding of the paper and the miniature's paired evidence about it."""

    section: str  # where the paper (and the report) makes it
    finding: str  # the paper's finding, as a sentence
    difference: str  # what A - B is, in words
    predicted: Predicted  # the sign the finding predicts for A - B
    interval: Interval | None  # A - B with its 95% interval; None: see ``missing``
    unit: str  # "VISAGE points", "ASR points", "alpha"
    missing: str = PENDING  # why there is no interval at all, when ``interval`` is None
    resolution: float = 0.0  # the step an edge is read to: no smaller difference is seen

    @property
    def digits(self) -> int:
        return 3 if self.unit == "alpha" else 1

    @property
    def read_on(self) -> Interval | None:
        """The interval the verdict reads: widened by ``resolution``, which it leaves out.

        An edge read off a grid can be off by up to one step, so a gap of a quarter step
        over identical directions is not a sign of anything.
        """
        return None if self.interval is None else widened(self.interval, self.resolution)

    @property
    def verdict(self) -> Reading | str:
        if self.interval is None and self.missing == PENDING:
            return "pending"
        return read_claim(self.read_on, self.predicted)

    def evidence(self) -> str:
        i = self.interval
        if i is None:
            return "pending" if self.missing == PENDING else "no interval"
        digits = self.digits
        if i.low is None or i.high is None:
            return f"{i.mean:+.{digits}f} {self.unit}, no interval (over {i.n} {i.resamples})"
        return (f"{i.mean:+.{digits}f} [{i.low:+.{digits}f}, {i.high:+.{digits}f}] {self.unit}, "
                f"over {i.n} {i.resamples}")  # fmt: skip

    def reason(self) -> str:
        """One line: why this verdict, with the smallest difference the interval detects."""
        i, verdict = self.interval, self.verdict
        if i is None:
            return "run `make paper`" if self.missing == PENDING else self.missing
        if i.low is None or i.high is None:
            return (f"no interval: {i.n} {i.resamples}, fewer than the {MIN_DIRECTIONS} an "
                    "interval needs")  # fmt: skip
        read, width = "the interval", f"+-{self.read_on.half_width:.{self.digits}f}"
        if self.resolution:
            read += " widened by the grid's step"
            width += f" (the interval's +-{i.half_width:.{self.digits}f} and the grid's step)"
        width = f"it detects differences beyond {width}"
        if verdict == "supported":
            return f"all of {read} has the predicted sign ({WHAT[self.predicted]}); {width}"
        if verdict == "contradicted":
            if self.predicted == "same":
                return f"{read} excludes 0: the difference is real; {width}"
            return f"all of {read} has the other sign; {width}"
        if self.predicted == "same":
            return f"0 is inside, which bounds the difference but never shows none; {width}"
        return f"0 is inside {read}; {width}"

    def row(self) -> str:
        return (f"| {self.section} | {self.finding} | {self.difference} | {self.evidence()} | "
                f"**{self.verdict}** | {self.reason()} |")  # fmt: skip


def _visage(store: Store, section: str, finding: str, a: Experiment, b: Experiment,
            predicted: Predicted) -> Claim:  # fmt: skip
    """A VISAGE claim: A - B paired over the runs' shared directions."""
    compared = compare_visage((a.points(store), a.spec), (b.points(store), b.spec))
    missing = PENDING if compared.verdict == "pending" else compared.reason
    return Claim(section, finding, f"VISAGE: {a.name} - {b.name}", predicted,
                 compared.difference, "VISAGE points", missing)  # fmt: skip


def _goals(
    section: str, finding: str, difference: str, cell: list[float | None] | None, n: int,
    sets: int, predicted: Predicted,
) -> Claim:  # fmt: skip
    """A defence claim: an ASR difference paired over goals, as the defence stored it.

    With several member sets its interval is crossed over them and the goals.
    """
    if cell is None:
        return Claim(section, finding, difference, predicted, None, "ASR points")
    mean, low, high = cell
    # n counts the outer factor, as crossed_interval's does: the one short of an interval
    n, over = (n, "goals") if sets < 2 else (sets, f"member sets (x {n} goals)")
    interval = Interval(float(mean), low, high, n, over)  # type: ignore[arg-type]
    return Claim(section, finding, difference, predicted, interval, "ASR points")


def claims(store: Store, paper: Paper, shield: dict[str, Any] | None,
           fractures: dict[str, Breakage | None],
           refined: dict[str, Breakage | None] | None = None) -> list[Claim]:  # fmt: skip
    """Every finding the miniature tests, in the paper's order.

    ``fractures``: basin or breakage per Table 1 model, on its grid; ``refined``: the
    same near a model's edges, on the finer grid.
    """
    t1 = {name: pair[0] for name, pair in paper.table1.items()}
    aligned = t1["aligned"]
    out = [
        _visage(
            store,
            "Table 1",
            f"Harmful finetuning ({name}) drags the model out of its safety basin",
            e,
            aligned,
            "lower",
        )  # fmt: skip
        for name, e in t1.items()
        if name.startswith("harmful")
    ]
    mixes = [n for n in t1 if n.startswith("mix")]
    for name in mixes:
        harmful = t1.get(f"harmful {name.split()[-1]}")
        if harmful is not None:
            finding = "Mixing in safety data keeps more of the basin than harmful data alone"
            out.append(_visage(store, "Table 1", finding, t1[name], harmful, "higher"))
        finding = "With safety data mixed in, the model stays in the aligned model's basin"
        out.append(_visage(store, "Table 1", finding, t1[name], aligned, "same"))
    t2, default = paper.table2, paper.table2["default"]
    presets = {
        "empty": ("Removing the system prompt weakens the basin", "lower"),
        "aoa": ("A role-play system prompt (AOA) weakens the basin", "lower"),
        "llama2": ("LLaMA-2's safety system prompt strengthens the basin", "higher"),
    }
    for preset, (finding, predicted) in presets.items():
        if preset in t2:
            out.append(_visage(store, "Table 2", finding, t2[preset], default, predicted))  # type: ignore[arg-type]
    out += _defence(shield)
    step, fine = paper.sizes.grid_step, paper.sizes.fine_step
    for model, found in fractures.items():
        out.append(_breakage(model, found, t1[model].origin_asr(store), step))
    for model, found in (refined or {}).items():
        near = f"{model}, near its edges on a {fine:.2g} grid"
        out.append(_breakage(near, found, t1[model].origin_asr(store), fine))
    return out


def _breakage(
    model: str, found: Breakage | None, origin_asr: float | None, step: float = 0.0
) -> Claim:
    """Basin or breakage for one model: the fluency edge minus the ASR edge, over directions.

    A model already past ASR_EDGE at alpha = 0 has no basin: its ASR edge is 0, so the gap
    is its fluency edge, and the finding it tests is that it broke safety, not language.
    Each edge is read off the grid, so no gap within one step of 0 is resolved: a stored
    gap carries its grid's step, ``step`` names it while the model is pending.
    """
    if origin_asr is not None and origin_asr >= ASR_EDGE:
        finding = (f"{model} has left the basin while it still produces language (ASR "
                   f">= {ASR_EDGE:.0f}% at the model; the gap is its fluency edge)")  # fmt: skip
    else:
        finding = (f"Safety ({model}) falls before capability does: the basin is not where "
                   "the model stops producing language")  # fmt: skip
    if found is None:
        return Claim("Basin or breakage", finding, BREAKAGE, "higher", None, "alpha",
                     resolution=step)  # fmt: skip
    gap = found.gaps[0]
    missing = f"no direction has both edges on the grid ({gap.censored} side(s) censored)"
    return Claim("Basin or breakage", finding, BREAKAGE, "higher", gap.interval, "alpha",
                 missing, resolution=gap.step)  # fmt: skip


def _defence(shield: dict[str, Any] | None) -> list[Claim]:
    ci = {} if shield is None else shield["intervals"]
    # each goal is sent one template by the adaptive attacker: the goals' count
    n = 0 if shield is None else sum(int(t["chosen_for"]) for t in shield["templates"])
    sets = 1 if shield is None else len(shield.get("member_sets") or [0])
    attack = "the jailbreak" if shield is None else shield["attack"]
    return [
        _goals(
            "Section 6",
            "Perturbing the weights is a defence against jailbreaks",
            f"ASR of {attack}: defended - undefended",
            ci.get("defended_minus_undefended"),
            n,
            sets,
            "lower",
        ),  # fmt: skip
        _goals(
            "Section 6",
            "Adapting to the defence, not only choosing a template per goal, wins ASR back",
            "ASR under the defence: adaptive - per-goal choice at the model",
            ci.get("adaptive_minus_control"),
            n,
            sets,
            "higher",
        ),
        _goals(
            "Section 6",
            "An adaptive attacker wins back part of what the defence removed",
            "ASR under the defence: adaptive - non-adaptive",
            ci.get("adaptive_minus_defended"),
            n,
            sets,
            "higher",
        ),  # fmt: skip
    ]


def markdown(found: list[Claim]) -> list[str]:
    """The claims table, and how many findings each verdict holds."""
    counts = {v: sum(c.verdict == v for c in found)
              for v in ("supported", "contradicted", "not shown", "pending")}  # fmt: skip
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return [
        "",
        "## The paper's findings, one verdict each",
        "",
        "Each finding predicts the sign of a difference A - B. Its evidence is that "
        "difference with its 95% interval, paired over what both arms share (the same "
        "directions and prompts; for section 6 the same goals). *Supported*: the whole "
        "interval has the predicted sign. *Contradicted*: it has the other sign (or, for a "
        "finding that something stays the same, it excludes 0). *Not shown*: 0 is inside, "
        "which is absence of evidence, not evidence that the arms are equal. Each row gives the "
        "smallest difference its interval could detect.",
        "",
        f"In all: {summary}.",
        "",
        "| where | the paper's finding | A - B | the miniature's evidence | verdict | why |",
        "|---|---|---|---|---|---|",
        *(c.row() for c in found),
        "",
        *_resolution(found),
    ]


def _resolution(found: list[Claim]) -> list[str]:
    """What the basin-or-breakage rows can resolve: their edges are read off the grid."""
    steps = {round(c.resolution, 6) for c in found
             if c.section == "Basin or breakage" and c.resolution}  # fmt: skip
    if not steps:
        return []
    shown = " or ".join(f"{s:.3g}" for s in sorted(steps, reverse=True))
    by_row = ", as each row's grid has it" if len(steps) > 1 else ""
    return [
        f"*Basin or breakage* reads each curve's edge as the smallest grid |alpha| on each "
        f"side of the model where it reaches its threshold (ASR >= {ASR_EDGE:.0f}%; MT-Bench "
        f"NLL {FLUENCY_RISE:g} nat/token above the model's own), so every edge is known to "
        f"one grid step ({shown} alpha{by_row}). The interval is over directions and does not "
        "include that rounding, so each verdict reads it widened by one step on each side: "
        "a gap within one step of 0 is not shown by this grid.",
        "",
    ]
