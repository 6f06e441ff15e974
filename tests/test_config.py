import subprocess
import sys
from pathlib import Path

import pytest

from landscape_core.errors import UserError
from landscape_core.spec.config import DirectionSpec, ModelSpec, SweepSpec


def test_unknown_top_level_key_is_an_error():
    with pytest.raises(UserError, match="unknown key.*colour"):
        SweepSpec.from_dict({"colour": "red"})


def test_unknown_nested_key_is_an_error():
    with pytest.raises(UserError, match="generation.*max_tokens"):
        SweepSpec.from_dict({"generation": {"max_tokens": 5}})


def test_bad_literal_names_the_choices():
    with pytest.raises(UserError, match="'layer'"):
        SweepSpec.from_dict({"directions": [{"norm": "batch"}]})


def test_dict_round_trip_gives_an_equal_spec():
    spec = SweepSpec.from_dict(
        {"directions": [{"seed": 1}, {"seed": 2}], "grid": [{"num": 3}, {"num": 5}]}
    )
    assert SweepSpec.from_dict(spec.to_dict()) == spec


def test_label_and_runtime_do_not_change_the_key():
    a = SweepSpec.from_dict({"label": "a", "runtime": {"batch_size": 4}})
    b = SweepSpec.from_dict({"label": "b", "runtime": {"batch_size": 64}})
    assert a.key() == b.key()


def test_key_is_stable_across_processes():
    code = "from landscape_core.spec.config import SweepSpec; print(SweepSpec().key())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == SweepSpec().key()


def test_interpolation_defaults_to_no_normalisation():
    spec = DirectionSpec(kind="interpolation", target=ModelSpec())
    assert spec.norm == "none"
    assert spec.skip == ()


def test_interpolation_rejects_normalisation():
    with pytest.raises(UserError, match="remove `norm`"):
        SweepSpec.from_dict(
            {
                "directions": [
                    {"kind": "interpolation", "norm": "layer", "target": {"kind": "bundled"}}
                ]
            }
        )


def test_two_random_directions_need_different_seeds():
    with pytest.raises(UserError, match="different seeds"):
        SweepSpec.from_dict({"directions": [{"seed": 1}, {"seed": 1}], "grid": [{}, {}]})


def test_one_axis_per_direction():
    with pytest.raises(UserError, match="one axis per direction"):
        SweepSpec.from_dict({"directions": [{"seed": 1}, {"seed": 2}]})


def test_missing_config_file_says_where_examples_are(tmp_path):
    with pytest.raises(UserError, match="configs/"):
        SweepSpec.from_yaml(tmp_path / "nope.yaml")


def test_shipped_configs_parse():
    configs = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert configs
    for path in configs:
        SweepSpec.from_yaml(path)
