"""The CUDA path, read as a CUDA user would and tested on CPU as far as CPU can.

Directions are the CPU's tensors on every device; bfloat16 (CUDA's default) is
perturbed in float32 and rounded once, and restores to theta_0 bit for bit.
"""

from __future__ import annotations

import copy

import torch

from landscape_core.engine import directions as directions_module
from landscape_core.engine.directions import Directions
from landscape_core.engine.models import resolve_dtype
from landscape_core.engine.perturb import Perturber, snapshot, unique_parameters
from landscape_core.spec.config import DirectionSpec, ModelSpec

SPECS = (DirectionSpec(kind="random", seed=7), DirectionSpec(kind="random", seed=8, norm="filter"))


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def test_a_cuda_sessions_directions_are_the_cpu_ones_bit_for_bit(tiny_loaded, monkeypatch):
    base = {n: p.detach().clone() for n, p in unique_parameters(tiny_loaded.model).items()}
    on_cpu = {n: (d1, d2) for n, d1, d2 in Directions(SPECS, base, None).items()}

    # the CUDA path: the weights report a CUDA device, and every tensor is moved there
    moves = []

    def to_cuda(t: torch.Tensor, device: torch.device) -> torch.Tensor:
        moves.append(device.type)
        return t  # the move itself is the one step CPU cannot take

    monkeypatch.setattr(directions_module, "place", to_cuda)
    monkeypatch.setattr(Directions, "_device", lambda self, name: torch.device("cuda"))
    on_cuda = {n: (d1, d2) for n, d1, d2 in Directions(SPECS, base, None, cache=True).items()}

    assert moves and set(moves) == {"cuda"}  # drawn on the CPU, then moved
    assert on_cuda.keys() == on_cpu.keys()
    for name, (d1, d2) in on_cpu.items():
        assert on_cuda[name][0].device.type == "cpu"
        assert torch.equal(_bits(on_cuda[name][0]), _bits(d1)), name
        assert torch.equal(_bits(on_cuda[name][1]), _bits(d2)), name


def test_b_auto_dtype_is_bfloat16_on_cuda_and_float32_on_cpu():
    assert resolve_dtype(ModelSpec(), "cuda") == "bfloat16"
    assert resolve_dtype(ModelSpec(), "cpu") == "float32"


def _bf16_perturber(tiny_loaded):
    model = copy.deepcopy(tiny_loaded.model).to(torch.bfloat16)
    base = snapshot(model)
    dirs = Directions(SPECS[:1], base, None, cache=True)
    return model, base, dirs, Perturber(model, base, dirs)


def test_b_bfloat16_weights_are_the_float32_sum_rounded_once(tiny_loaded):
    model, base, dirs, pert = _bf16_perturber(tiny_loaded)
    theta0 = {n: t.clone() for n, t in base.items()}
    params = unique_parameters(model)
    with pert:
        for alpha in (1e-4, 0.01, -0.3):
            pert.set(alpha)
            for name, d1, _ in dirs.items():
                want = theta0[name].float().add(d1, alpha=alpha).to(torch.bfloat16)
                assert torch.equal(params[name].data, want), (alpha, name)
    for name, p in params.items():  # restored bit for bit
        assert torch.equal(p.data.view(torch.int16), theta0[name].view(torch.int16)), name


def _realised_cosine(tiny_loaded, alpha: float) -> float:
    """cos(theta(alpha) - theta_0, alpha*d) over all weights: how much of the step survives."""
    model, base, dirs, pert = _bf16_perturber(tiny_loaded)
    params = unique_parameters(model)
    dot = n_real = n_asked = 0.0
    with pert:
        pert.set(alpha)
        for name, d1, _ in dirs.items():
            real = params[name].data.double() - base[name].double()
            asked = alpha * d1.double()
            dot += float((real * asked).sum())
            n_real += float((real * real).sum())
            n_asked += float((asked * asked).sum())
    return dot / max(n_real * n_asked, 1e-300) ** 0.5


def test_b_the_smallest_meaningful_alpha_in_bfloat16_is_about_a_hundredth(tiny_loaded):
    """docs/gpu.md's rule: bf16 keeps 8 significant bits (spacing 2^-8 of a weight).

    With ``layer`` norm a step alpha*d is alpha of a weight's size per element, so at
    0.01 the weights move along d (measured 0.986); at 1e-4 what moves is mostly
    rounding (0.21), though not nothing: the float32 sum rounded once keeps it.
    """
    assert _realised_cosine(tiny_loaded, 0.01) > 0.97
    assert 0.05 < _realised_cosine(tiny_loaded, 1e-4) < 0.5
