import pytest
import torch

from landscape_core.engine.directions import Directions, gaussian
from landscape_core.engine.perturb import snapshot
from landscape_core.spec.config import DirectionSpec, ModelSpec


def _directions(model, *specs, cache=False):
    return Directions(tuple(specs), snapshot(model), models_dir=None, cache=cache)


def test_gaussian_is_reproducible_per_seed_and_name():
    shape = torch.Size([4, 5])
    assert torch.equal(gaussian(1, "a", shape), gaussian(1, "a", shape))
    assert not torch.equal(gaussian(1, "a", shape), gaussian(1, "b", shape))
    assert not torch.equal(gaussian(1, "a", shape), gaussian(2, "a", shape))


def test_layer_normalisation_matches_each_weights_norm(tiny_loaded):
    dirs = _directions(tiny_loaded.model, DirectionSpec(seed=3))
    for name, d1, _ in dirs.items():
        if "norm" in name:
            continue
        w = dirs.base[name]
        assert torch.allclose(d1.norm(), w.norm(), rtol=1e-5)


def test_filter_normalisation_matches_each_rows_norm(tiny_loaded):
    dirs = _directions(tiny_loaded.model, DirectionSpec(seed=3, norm="filter"))
    name = "model.layers.0.mlp.up_proj.weight"
    d1, _ = dirs.tensor(name)
    assert torch.allclose(d1.norm(dim=1), dirs.base[name].norm(dim=1), rtol=1e-5)


def test_norm_layers_are_zeroed(tiny_loaded):
    dirs = _directions(tiny_loaded.model, DirectionSpec(seed=3))
    zeroed = [n for n, d1, _ in dirs.items() if "norm" in n]
    assert zeroed
    assert all(not dirs.tensor(n)[0].any() for n in zeroed)


def test_2d_directions_are_orthogonal(tiny_loaded):
    for norm in ("layer", "filter", "none"):
        dirs = _directions(
            tiny_loaded.model, DirectionSpec(seed=1, norm=norm), DirectionSpec(seed=2, norm=norm)
        )
        assert abs(dirs.cosine()) < 1e-6


def test_orthogonalisation_keeps_each_tensors_norm(tiny_loaded):
    dirs = _directions(tiny_loaded.model, DirectionSpec(seed=1), DirectionSpec(seed=2))
    for name, _, d2 in dirs.items():
        if "norm" not in name:
            assert torch.allclose(d2.norm(), dirs.base[name].norm(), rtol=1e-5)


def test_cached_and_regenerated_directions_are_identical(tiny_loaded):
    specs = (DirectionSpec(seed=1), DirectionSpec(seed=2))
    cached = _directions(tiny_loaded.model, *specs, cache=True)
    fresh = _directions(tiny_loaded.model, *specs)
    for (_, a1, a2), (_, b1, b2) in zip(cached.items(), fresh.items(), strict=True):
        assert torch.equal(a1, b1) and torch.equal(a2, b2)


def test_interpolation_reaches_the_target_at_alpha_one(tiny_loaded, tiny_target_dir):
    from safetensors.torch import load_file

    target = ModelSpec(kind="local", path=str(tiny_target_dir))
    dirs = _directions(tiny_loaded.model, DirectionSpec(kind="interpolation", target=target))
    theta_b = load_file(str(tiny_target_dir / "model.safetensors"))
    for name, d1, _ in dirs.items():
        assert torch.allclose(dirs.base[name] + d1, theta_b[name], atol=1e-6)


@pytest.mark.parametrize("norm", ["layer", "filter"])
@pytest.mark.parametrize("shape", [(3000, 700), (5, 7), (4000,)])
def test_blockwise_normalize_equals_the_whole_tensor_formula(norm, shape):
    """Blocks change no bit: stored points keep their directions across versions."""
    from landscape_core.engine.directions import _units, normalize

    gen = torch.Generator().manual_seed(0)
    d, w = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) * 0.1
    du, wu = _units(d, norm).double(), _units(w, norm).double()
    scale = wu.norm(dim=1, keepdim=True) / du.norm(dim=1, keepdim=True).clamp_min(1e-30)
    expected = (du * scale).reshape(shape).float()
    assert torch.equal(normalize(d, w, norm), expected)
