"""The local executor: one model session in this process, points one after another."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from landscape_core.engine.decoder import Generation
from landscape_core.engine.session import Session
from landscape_core.errors import Cancelled
from landscape_core.executors import ActorState, Done, Pick, SessionInfo, ShouldStop
from landscape_core.judging import keyword
from landscape_core.measure import Inputs, NamedJudge, compute
from landscape_core.plan.identity import Plan


def open_session(p: Plan, root: Path, threads: int = 0) -> Session:
    """The model, ready to perturb; ``stop: verdict`` ends answers at the keywords.

    ``threads`` > 0 sets torch's intra-op threads (a Ray actor's CPU slot).
    """
    if threads > 0:
        torch.set_num_threads(threads)
    return Session.open(p.spec, root, p.prompts.prompts, keyword.REFUSAL_KEYWORDS)


def session_info(session: Session) -> SessionInfo:
    return SessionInfo(
        device=session.loaded.device,
        dtype=session.loaded.dtype,
        texts=tuple(session.texts),
        add_special=session.add_special,
        provenance={**session.provenance(), "cosine": session.cosine},
    )


def inputs_of(p: Plan, session: Session, judges: list[NamedJudge]) -> Inputs:
    prompts = p.prompts
    return Inputs(prompts.prompts, session.texts, session.add_special, judges, [], prompts.answers)


class LocalExecutor:
    """Points in ``pick`` order on this process's model, under one perturber per landscape."""

    def __init__(self, p: Plan, root: Path, judges: list[NamedJudge], threads: int = 0) -> None:
        self.session = open_session(p, root, threads)
        self.session_info = session_info(self.session)
        self.inputs = inputs_of(p, self.session, judges)

    def use_reference(self, answers: Sequence[str]) -> None:
        self.inputs = dataclasses.replace(self.inputs, reference=list(answers))

    def landscape(self, rep: int, pick: Pick, done: Done, should_stop: ShouldStop) -> bool:
        session = self.session
        session.use_directions(session.spec.replicates()[rep])
        with session.perturber() as perturber:
            while (point := pick()) is not None:
                if should_stop is not None and should_stop():
                    return False
                try:
                    result = compute(perturber, session, self.inputs, point, should_stop)
                except Cancelled:
                    return False
                done(point, result)
        return True

    def origin_generations(self) -> list[Generation]:
        return self.session.generate(self.inputs.texts, self.inputs.add_special, None)

    def answer_nll(self, texts: list[str], answers: list[str]) -> list[tuple[float, int]]:
        return self.session.answer_nll(texts, answers, self.inputs.add_special)

    def actors(self) -> list[ActorState]:
        return []

    def close(self) -> None:
        """Weights are restored when each landscape's perturber exits."""
