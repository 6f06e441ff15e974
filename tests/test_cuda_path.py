"""The CUDA path, read as a CUDA user would and tested on CPU as far as CPU can.

Directions are the CPU's tensors on every device; bfloat16 (CUDA's default) is
perturbed in float32 and rounded once, and restores to theta_0 bit for bit.
"""

from __future__ import annotations

import copy
import json
import os
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from landscape_core.engine import directions as directions_module
from landscape_core.engine import session as session_module
from landscape_core.engine.directions import Directions
from landscape_core.engine.perturb import Perturber, host_copy, snapshot, unique_parameters
from landscape_core.engine.session import Session
from landscape_core.errors import UserError
from landscape_core.plan.preflight import device_memory, preflight
from landscape_core.plan.resources import resolve_dtype, visible_gpu
from landscape_core.spec.config import DirectionSpec, ModelSpec, SweepSpec

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


# (c) 8-bit and 4-bit weights generate at the origin and are never perturbed


def _spec(**overrides):
    data = {
        "model": {"kind": "local", "path": "m", "quantization": "8bit"},
        "directions": [{"kind": "random", "seed": 7}],
        "grid": [{"start": -0.5, "stop": 0.5, "num": 3}],
    }
    return SweepSpec.from_dict({k: v for k, v in {**data, **overrides}.items() if v is not None})


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"grid": [{"start": 0, "stop": 0.1, "num": 2}]},
        {"measure": "basin-radius", "grid": None},
    ],
)
def test_c_a_quantised_model_is_refused_any_perturbation_with_what_to_do(overrides):
    with pytest.raises(UserError, match="quantised weights cannot be perturbed") as info:
        _spec(**overrides)
    assert "quantization: none" in str(info.value)
    assert "start: 0, stop: 0, num: 1" in str(info.value)


def test_c_a_quantised_model_may_generate_at_the_origin():
    spec = _spec(grid=[{"start": 0, "stop": 0, "num": 1}])
    assert not spec.perturbs()


def test_c_a_quantised_session_generates_and_refuses_to_move(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(session_module, "is_quantised", lambda model: True)  # bnb needs CUDA
    monkeypatch.setattr(session_module, "snapshot", _no_snapshot)
    spec = tiny_spec(grid=[{"start": 0, "stop": 0, "num": 1}])
    session = Session.open(spec, tmp_path, ["Say hello.", "Name a colour."])
    with session.perturber() as weights:
        weights.set(0.0, 0.0)
        weights.check_finite()
        answers = session.generate(session.texts, session.add_special, None)
        assert len(answers) == 2 and all(a.n_tokens > 0 for a in answers)
        with pytest.raises(UserError, match="cannot be perturbed"):
            weights.set(0.1)


def _no_snapshot(*args, **kwargs):
    raise AssertionError("a quantised model has no base copy to take")


# (d) preflight sizes a CUDA sweep against the GPU's free memory


def _fake_gpu(tmp_path, monkeypatch, free_mib: int, total_mib: int = 81559) -> None:
    """An nvidia-smi on PATH that reports one GPU, as the real one's CSV query does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, {total_mib}, {free_mib}'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _llama_8b_dir(tmp_path: Path) -> Path:
    """A Llama-3.1-8B-shaped model's config and a safetensors header of its size."""
    root = tmp_path / "llama-8b"
    root.mkdir()
    config = {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "max_position_embeddings": 8192,
    }  # fmt: skip
    (root / "config.json").write_text(json.dumps(config))
    header = json.dumps(
        {"w": {"dtype": "BF16", "shape": [8_030_261_248], "data_offsets": [0, 0]}}
    ).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return root


def _gpu_spec(root: Path) -> SweepSpec:
    return SweepSpec.from_dict(
        {
            "model": {"kind": "local", "path": str(root)},
            "prompts": {"source": "advbench", "limit": 80},
            "directions": [{"kind": "random", "seed": 7}],
            "grid": [{"start": -0.5, "stop": 0.5, "num": 13}],
        }
    )


def test_d_preflight_refuses_a_sweep_the_gpu_cannot_hold_with_the_numbers(tmp_path, monkeypatch):
    _fake_gpu(tmp_path, monkeypatch, free_mib=20_000)  # an 8B model in bf16 is 15 GiB alone
    with pytest.raises(UserError) as info:
        preflight(_gpu_spec(_llama_8b_dir(tmp_path)), tmp_path)
    message = str(info.value)
    assert "GPU NVIDIA H100 80GB HBM3 (19.5 of 79.6 GiB free)" in message
    assert "weights 14.96" in message  # bfloat16, CUDA's default: 2 bytes a weight
    assert "lower runtime.batch_size" in message


def test_d_preflight_sizes_a_sweep_that_fits_on_the_gpu(tmp_path, monkeypatch):
    _fake_gpu(tmp_path, monkeypatch, free_mib=80_000)
    check = preflight(_gpu_spec(_llama_8b_dir(tmp_path)), tmp_path)
    assert check.memory is not None
    assert check.memory.weights == 8_030_261_248 * 2
    assert check.memory.total <= 0.85 * 80_000 * 2**20


def test_d_no_gpu_seen_keeps_the_cpu_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpu() is None
    spec = _gpu_spec(_llama_8b_dir(tmp_path))
    assert device_memory(spec, None)[0] is False


# (e) each Ray actor takes one GPU


def test_e_each_ray_actor_takes_one_gpu_and_no_more_actors_than_gpus():
    ray_pool = pytest.importorskip("landscape_core.executors.ray_pool")
    spec = _gpu_spec_plain()
    pool = ray_pool.actor_pool(spec, {"GPU": 4.0, "CPU": 64.0})
    assert pool.cuda and pool.actors == 4
    assert pool.options["num_gpus"] == 1 and pool.options["num_cpus"] == 0
    cpu = ray_pool.actor_pool(replace(spec, model=replace(spec.model, device="cpu")), {"CPU": 8})
    assert not cpu.cuda and cpu.options["num_gpus"] == 0
    too_many = replace(spec, runtime=replace(spec.runtime, ray_actors=5))
    with pytest.raises(UserError, match="has 4: set ray_actors to 4 or fewer"):
        ray_pool.actor_pool(too_many, {"GPU": 4.0, "CPU": 64.0})
    on_cuda = replace(spec, model=replace(spec.model, device="cuda"))
    with pytest.raises(UserError, match="has no GPU"):
        ray_pool.actor_pool(on_cuda, {"CPU": 64.0})


def _gpu_spec_plain() -> SweepSpec:
    return SweepSpec.from_dict({"directions": [{"kind": "random", "seed": 7}]})


# (f) the base copy in host memory, when the GPU is short, is pinned


def test_f_a_host_base_copy_of_gpu_weights_is_pinned(monkeypatch):
    asked = {}

    class Allocated:
        def copy_(self, src):
            self.src = src
            return self

    def empty(shape, dtype, pin_memory=False):  # CPU-only torch cannot pin: record the ask
        asked.update(shape=shape, dtype=dtype, pin_memory=pin_memory)
        return Allocated()

    class OnGpu:  # what host_copy reads of a CUDA tensor
        device = torch.device("cuda")
        shape = (3, 2)
        dtype = torch.bfloat16

    weight = OnGpu()
    monkeypatch.setattr(torch, "empty", empty)
    out = host_copy(weight)  # type: ignore[arg-type]
    assert asked == {"shape": (3, 2), "dtype": torch.bfloat16, "pin_memory": True}
    assert out.src is weight


def test_f_a_host_base_copy_is_exact_and_apart(tiny_loaded):
    base = snapshot(tiny_loaded.model, host=True)
    for name, p in unique_parameters(tiny_loaded.model).items():
        assert torch.equal(base[name], p.detach())
        assert base[name].data_ptr() != p.data_ptr()
