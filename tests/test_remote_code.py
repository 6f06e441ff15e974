"""A model's own Python code runs only when the user asks, and is part of its identity."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from landscape_core.plan.model_files import catalogue, fingerprint, model_files
from landscape_core.spec.config import ModelSpec

PAGE = Path(__file__).resolve().parent.parent / "pages" / "launch_page.py"


def _dropped_in_finetune(models: Path) -> Path:
    folder = models / "innocent-finetune"
    folder.mkdir(parents=True)
    base = {"kind": "local", "path": "/some/model", "trust_remote_code": True, "device": "cuda"}
    (folder / "recipe.json").write_text(json.dumps({"spec": {"base": base}}))
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    return folder


def test_a_dropped_in_recipe_cannot_switch_on_remote_code(tmp_path):
    folder = _dropped_in_finetune(tmp_path / "models")
    offered = catalogue(tmp_path / "models").choices["Finetuned: innocent-finetune"]
    assert offered == {"kind": "local", "path": "/some/model", "adapter": str(folder)}
    assert ModelSpec.from_dict(offered).trust_remote_code is False


def _model_with_code(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    (model / "modeling_x.py").write_text("print('hello')\n")
    return model


def test_with_remote_code_the_models_python_files_are_part_of_its_identity(tmp_path):
    model = _model_with_code(tmp_path)
    trusted = ModelSpec(kind="local", path=str(model), trust_remote_code=True)
    before = fingerprint(trusted, model_files(trusted))
    (model / "modeling_x.py").write_text("print('edited')\n")
    assert fingerprint(trusted, model_files(trusted)) != before
    untrusted = ModelSpec(kind="local", path=str(model))
    assert "modeling_x.py" not in model_files(untrusted)  # code that never runs


def test_launch_names_the_code_and_leaves_it_off(tmp_path, monkeypatch):
    model = _model_with_code(tmp_path)
    monkeypatch.setenv("LANDSCAPE_STORE", str(tmp_path / "store"))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    source = next(s for s in at.selectbox if s.label == "Model source")
    source.set_value("Local directory (safetensors)").run()
    at.text_input(key="model_path").set_value(str(model)).run()
    assert not at.exception
    assert any("modeling_x.py" in w.value.replace("\\", "") for w in at.warning)
    box = next(c for c in at.checkbox if "trust_remote_code" in c.label)
    assert box.value is False
