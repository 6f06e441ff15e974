"""What a run costs on this machine: the measured throughput and the time it predicts.

Pure arithmetic, torch-free. ``store.throughput`` reads the measurements from finished
points; preflight turns them into the Launch page's estimate and the Jobs page's time
left comes from ``time_left``. The cost unit is an answer *slot*, one prompt x
``max_new_tokens``: a point's work is n_prompts x max_new_tokens slots whatever it
generates, so a measurement over many points absorbs early stops and per-point costs.
"""

from __future__ import annotations

from dataclasses import dataclass

# The constants' guess, before this machine has measured anything.
# Measured on 2 idle CPU cores: SmolLM2-135M, fp32, `make bench` (20 prompts a batch)
# generated 4,440 tokens in 38.6 s -> ~115 new tokens/s, point overheads included.
CPU_TOKENS_PER_S_135M = 115.0
REFERENCE_PARAMS = 135e6
CUDA_SPEEDUP = 20.0  # a rough factor for a datacentre GPU over 2 CPU cores
# The unperturbed model's NLL of every answer, after the points (runtime.coherence):
# `rescore --coherence` on the demo's 260 answers took 41.5 s here, ~8 s of it loading.
COHERENCE_S_PER_ANSWER_135M = 0.13
# With no measurement the guess is a range, from the constants' figure to this many
# times it: on the same 2 cores shared with other jobs (issue 32), runs guessed at
# 3 min and 87 s took 29, 21 and 12 min: 8 to 14 times the constants' figure.
FIRST_GUESS_FACTOR = 10.0
# The time left weighs the job's own pace against the machine's history as if the
# history were this many of the job's points: one odd point moves it, three halve it.
PRIOR_POINTS = 3.0


@dataclass(frozen=True)
class Throughput:
    """Finished points' cost: their seconds over their answer slots and generated tokens."""

    n_points: int
    seconds: float
    slots: int  # sum over the points of n_prompts x max_new_tokens
    tokens: int  # tokens they generated (early stops make it fewer than slots)
    last: float = 0.0  # when the latest of them finished (epoch seconds)
    coherence_s: float | None = None  # seconds per answer of finished jobs' coherence stage

    @property
    def per_slot(self) -> float:
        """Seconds per slot at these points' own mix of early stops and full answers."""
        return self.seconds / max(self.slots, 1)

    @property
    def per_token(self) -> float:
        """Seconds per generated token: the cost of a slot answered at full length."""
        return self.seconds / max(self.tokens, 1)


def assumed_per_slot(n_params: int, cuda: bool) -> float:
    """The constants' seconds per slot: every answer at full length, an idle machine."""
    rate = CPU_TOKENS_PER_S_135M * REFERENCE_PARAMS / n_params * (CUDA_SPEEDUP if cuda else 1)
    return 1.0 / rate


def coherence_per_answer(
    n_params: int, per_slot: float | None = None, measured: Throughput | None = None
) -> float:
    """Seconds to measure one answer's coherence (a teacher-forced pass of the model).

    Finished jobs' coherence stages (``measured.coherence_s``) say it best. Without
    them, the constant (measured on the same idle CPU as ``CPU_TOKENS_PER_S_135M``) is
    scaled by how much slower this machine generates (``per_slot``) than that: an
    overestimate, since small batches slow generation more than the teacher-forced pass.
    """
    if measured is not None and measured.coherence_s is not None:
        return measured.coherence_s
    seconds = COHERENCE_S_PER_ANSWER_135M * n_params / REFERENCE_PARAMS
    if per_slot is None:
        return seconds
    return seconds * per_slot / assumed_per_slot(n_params, cuda=False)


def blended_per_slot(own: Throughput | None, prior: Throughput | None) -> float | None:
    """Seconds per slot for a job's remaining points; None when nothing is measured.

    The job's own points are read per generated token, so the remaining points are
    priced at full length: a grid visits the points near the model first, where answers
    stop early and cost little, and those must not set the pace for the far points.
    The machine's history (``prior``, earlier points of this model on this device) is
    weighed as ``PRIOR_POINTS`` points, so the figure moves smoothly as points finish.
    """
    if own is None or own.tokens <= 0:
        return None if prior is None else prior.per_slot
    if prior is None:
        return own.per_token
    weight = own.n_points / (own.n_points + PRIOR_POINTS)
    return weight * own.per_token + (1 - weight) * prior.per_slot


@dataclass(frozen=True)
class Remaining:
    """What a running job has left to do, in slots and answers."""

    points: int  # points not yet stored, the one being computed included
    slots_per_point: int  # n_prompts x max_new_tokens
    coherence_answers: int  # answers whose coherence is still to measure (0: none)


def time_left(
    left: Remaining,
    per_slot: float,
    coherence_s: float,
    since: float,
    measuring_coherence: bool = False,
) -> float:
    """Seconds left: the remaining points' slots, then the coherence stage.

    ``since``: seconds since the last point finished (or the coherence stage began),
    counted off the work under way so the figure runs down between points.
    """
    coherence = left.coherence_answers * coherence_s
    if measuring_coherence:
        return max(coherence - since, 0.0)
    if left.points <= 0:
        return coherence
    point = left.slots_per_point * per_slot
    return max(point - since, 0.0) + (left.points - 1) * point + coherence
