import pytest
import torch

from landscape_core.engine.directions import Directions
from landscape_core.engine.perturb import Perturber, snapshot, unique_parameters
from landscape_core.errors import NonFiniteError
from landscape_core.spec.config import DirectionSpec, ModelSpec


def _state(model):
    return {n: p.detach().clone() for n, p in unique_parameters(model).items()}


def _perturber(model, cache=False):
    base = snapshot(model)
    specs = (DirectionSpec(seed=1), DirectionSpec(seed=2))
    return Perturber(model, base, Directions(specs, base, None, cache=cache))


def _bit_equal(a, b):
    return all(torch.equal(a[n], b[n]) for n in a)


def test_exit_restores_weights_bit_for_bit(tiny_loaded):
    before = _state(tiny_loaded.model)
    with _perturber(tiny_loaded.model) as pert:
        pert.set(0.3, -0.2)
        assert not _bit_equal(before, _state(tiny_loaded.model))
    assert _bit_equal(before, _state(tiny_loaded.model))


def test_error_inside_still_restores(tiny_loaded):
    before = _state(tiny_loaded.model)
    with pytest.raises(RuntimeError), _perturber(tiny_loaded.model) as pert:
        pert.set(0.3, 0.1)
        raise RuntimeError("boom")
    assert _bit_equal(before, _state(tiny_loaded.model))


def test_setting_is_absolute_so_revisits_do_not_drift(tiny_loaded):
    with _perturber(tiny_loaded.model) as pert:
        pert.set(0.25, 0.1)
        first = _state(tiny_loaded.model)
        for a, b in [(-0.4, 0.3), (0.1, -0.5), (0.5, 0.5)]:
            pert.set(a, b)
        pert.set(0.25, 0.1)
        assert _bit_equal(first, _state(tiny_loaded.model))


def test_origin_is_the_base_exactly(tiny_loaded):
    before = _state(tiny_loaded.model)
    with _perturber(tiny_loaded.model) as pert:
        pert.set(0.0, 0.0)
        assert _bit_equal(before, _state(tiny_loaded.model))


def test_weights_are_base_plus_alpha_d1_plus_beta_d2(tiny_loaded):
    with _perturber(tiny_loaded.model, cache=True) as pert:
        pert.set(0.2, -0.3)
        params = unique_parameters(tiny_loaded.model)
        for name, d1, d2 in pert.directions.items():
            expected = pert.base[name] + 0.2 * d1 + -0.3 * d2
            assert torch.allclose(params[name], expected, atol=1e-6)


def test_tied_weights_stay_tied(tiny_loaded):
    model = tiny_loaded.model
    with _perturber(model) as pert:
        pert.set(0.4, 0.0)
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_nan_weight_is_reported_with_its_tensor(tiny_loaded):
    name = "model.layers.1.mlp.down_proj.weight"
    with _perturber(tiny_loaded.model) as pert:
        pert.set(0.1, 0.0)
        unique_parameters(tiny_loaded.model)[name].data[0, 0] = float("nan")
        with pytest.raises(NonFiniteError, match=name):
            pert.check_finite()


def test_interpolation_is_the_target_bit_for_bit_at_alpha_one(tiny_loaded, tiny_target_dir):
    from safetensors.torch import load_file

    base = snapshot(tiny_loaded.model)
    target = ModelSpec(kind="local", path=str(tiny_target_dir))
    dirs = Directions((DirectionSpec(kind="interpolation", target=target),), base, None)
    theta_b = load_file(str(tiny_target_dir / "model.safetensors"))
    with Perturber(tiny_loaded.model, base, dirs) as pert:
        pert.set(1.0)
        params = unique_parameters(tiny_loaded.model)
        assert all(torch.equal(params[n], theta_b[n]) for n in params)
        pert.set(0.0)
        assert all(torch.equal(params[n], base[n]) for n in params)


def test_spilled_base_and_directions_give_the_same_weights(tiny_loaded, tmp_path):
    """Base copy and cached directions in a file set every point exactly as in memory."""
    model = tiny_loaded.model
    before = _state(model)
    specs = (DirectionSpec(seed=1), DirectionSpec(seed=2))
    in_memory = snapshot(model)
    on_disk = snapshot(model, tmp_path)
    points = []
    for base, spill in ((in_memory, None), (on_disk, tmp_path)):
        directions = Directions(specs, base, None, cache=True, spill=spill)
        with Perturber(model, base, directions) as pert:
            pert.set(0.1, 0.2)
            pert.set(0.4, -0.3)  # the second point reads the cache back
            points.append(_state(model))
        assert _bit_equal(before, _state(model))
    assert _bit_equal(points[0], points[1])
    assert not _bit_equal(before, points[0])
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing is left if killed
