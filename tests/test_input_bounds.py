"""Bounded cost for any input (issue 28: items 5, 6, 7 and 15).

Each bound is a module constant; the tests set it small and feed an input just past
it, so they stay fast while showing the bound is kept and the refusal says why.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import yaml

from landscape_core.cli import main
from landscape_core.errors import UserError
from landscape_core.plan import gguf_meta, preflight, tokens
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.gguf_meta import read_gguf
from landscape_core.spec import limits
from landscape_core.spec.config import ModelSpec, PromptSetSpec, SweepSpec, SystemPromptSpec
from landscape_core.spec.datasets import load_prompts, read_table
from landscape_core.spec.jailbreak import load_templates
from landscape_core.store.runs import Store


def _model(tiny_model_dir: Path, tmp_path: Path, template: str | None = None, **config) -> Path:
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    if template is not None:
        (model / "chat_template.jinja").write_text(template)
    if config:
        data = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**data, **config}))
    return model


def _spec(model: Path, **extra) -> SweepSpec:
    data = {"model": {"kind": "local", "path": str(model)}, "prompts": {"limit": 2}}
    return SweepSpec.from_dict({**data, "grid": [{"num": 3}], **extra})


# --- item 5: YAML aliases, long values in messages, chat templates -----------------------


def test_a_yaml_alias_bomb_is_refused_as_an_alias(tmp_path):
    lines = ["label:", '  - &a0 ["xx", "xx", "xx", "xx", "xx", "xx", "xx", "xx", "xx"]']
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")  # 9^9 leaves when expanded
    with pytest.raises(UserError, match=r"aliases \(\*name\) are not accepted"):
        SweepSpec.from_yaml(path)


def test_a_jailbreak_template_file_refuses_aliases_too(tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text("- &t {name: a, family: f, text: 'x {goal}'}\n- *t\n")
    with pytest.raises(UserError, match="aliases"):
        load_templates(path)


def test_a_message_shows_a_long_value_cut_short(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({"label": ["x" * 100_000] * 100}))
    with pytest.raises(UserError, match="expected str") as err:
        SweepSpec.from_yaml(path)
    assert len(str(err.value)) < 1000  # 10 MB in full


def test_a_config_with_many_unknown_keys_names_a_few(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({f"k{i}": 1 for i in range(10_000)} | {1: 2}, sort_keys=False))
    with pytest.raises(UserError, match="and 9,991 more") as err:
        SweepSpec.from_yaml(path)
    assert len(str(err.value)) < 1000


def test_a_chat_template_writing_a_huge_string_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "TEMPLATE_EXTRA_CHARS", 10_000)
    model = _model(tiny_model_dir, tmp_path, "{{ 'A' * 1000000 }}")
    with pytest.raises(UserError, match="writes more than"):
        preflight.preflight(_spec(model), tmp_path / "store")


def test_a_chat_template_past_its_memory_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "TEMPLATE_MEMORY", 200 << 20)
    model = _model(tiny_model_dir, tmp_path, "{{ 'A' * 3000000000 }}")  # 3 GB if it ran
    with pytest.raises(UserError, match="chat template"):
        preflight.preflight(_spec(model), tmp_path / "store")


def test_nested_loops_in_a_chat_template_stop_at_the_time_limit(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(tokens, "TEMPLATE_CPU_S", 1)
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    model = _model(tiny_model_dir, tmp_path, loops)
    with pytest.raises(UserError, match="ran past its 1 s limit"):
        preflight.preflight(_spec(model), tmp_path / "store")


def test_a_chat_template_renders_as_the_tokenizer_does(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    prompts = ("How do I bake bread?", "Tell me a joke")
    system = SystemPromptSpec(preset="llama2")
    ours = render_prompts(
        tokens.FileTokenizer.from_directory(tiny_model_dir), prompts, system, "auto"
    )
    real = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert ours == render_prompts(real, prompts, system, "auto")


def test_a_chat_template_that_raises_names_its_message(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir, tmp_path, "{{ raise_exception('no system role') }}")
    with pytest.raises(UserError, match="no system role"):
        preflight.preflight(_spec(model), tmp_path / "store")


# --- item 6: the CLI asks before a long run ----------------------------------------------


@pytest.fixture
def long_config(tiny_model_dir, tmp_path, monkeypatch):
    """A tiny sweep that the threshold, set to 0 h, calls long."""
    monkeypatch.setattr(preflight, "CONFIRM_HOURS", 0.0)
    monkeypatch.setattr("landscape_core.cli.CONFIRM_HOURS", 0.0)
    path = tmp_path / "c.yaml"
    path.write_text(_spec(tiny_model_dir).to_yaml())
    return path


def test_submit_refuses_a_long_run_without_yes_off_a_terminal(long_config, tmp_path, capsys):
    assert main(["submit", str(long_config), "--store", str(tmp_path / "s")]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert Store.open(tmp_path / "s").jobs.frame().empty


def test_submit_with_yes_queues_a_long_run(long_config, tmp_path, capsys):
    assert main(["submit", str(long_config), "--store", str(tmp_path / "s"), "--yes"]) == 0
    assert len(Store.open(tmp_path / "s").jobs.frame()) == 1


def test_sweep_asks_on_a_terminal_and_stops_on_no(long_config, tmp_path, monkeypatch, capsys):
    asked = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda text: asked.append(text) or "n")
    assert main(["sweep", str(long_config), "--store", str(tmp_path / "s")]) == 2
    assert "[y/N]" in asked[0]
    assert "not started" in capsys.readouterr().err
    assert Store.open(tmp_path / "s").runs_frame().empty


def test_the_launch_page_reads_the_clis_threshold():
    source = (Path(__file__).parents[1] / "pages" / "launch_page.py").read_text()
    assert "CONFIRM_HOURS" in source and "LONG_RUN_H" not in source


# --- item 7: amplification ---------------------------------------------------------------


def _gguf(path: Path, n_tokens: int) -> Path:
    """A GGUF of metadata only: a gpt2 tokenizer of ``n_tokens`` empty strings."""

    def text(value: bytes) -> bytes:
        return struct.pack("<Q", len(value)) + value

    fields = [
        text(b"general.architecture") + struct.pack("<I", 8) + text(b"llama"),
        text(b"tokenizer.ggml.model") + struct.pack("<I", 8) + text(b"gpt2"),
        text(b"tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, n_tokens)
        + struct.pack("<Q", 0) * n_tokens,
    ]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(fields)) + b"".join(fields))
    return path


def test_a_gguf_with_too_many_tokens_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_meta, "MAX_ARRAY_ITEMS", 1000)
    with pytest.raises(UserError, match="1,001 items in its metadata array tokenizer.ggml"):
        read_gguf(_gguf(tmp_path / "vocab.gguf", 1001))


def test_a_gguf_within_the_bounds_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_meta, "MAX_ARRAY_ITEMS", 1000)
    assert len(read_gguf(_gguf(tmp_path / "vocab.gguf", 1000)).tokenizer.tokens) == 1000


def test_a_csv_with_too_many_columns_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_COLUMNS", 10)
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(11)) + "\n" + "x," * 10 + "x\n")
    with pytest.raises(UserError, match="11 columns; at most 10"):
        read_table(path)


def test_a_jsonl_with_too_many_keys_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_COLUMNS", 10)
    path = tmp_path / "wide.jsonl"
    path.write_text("\n".join(json.dumps({f"k{i}": "x"}) for i in range(11)) + "\n")
    with pytest.raises(UserError, match="11 columns"):
        read_table(path)


def test_a_prompt_line_past_the_bound_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_LINE_BYTES", 1 << 10)
    path = tmp_path / "long.csv"
    path.write_text("prompt\nshort\n" + "word " * 300 + "\n")
    spec = PromptSetSpec(source="file", path=str(path), column="prompt")
    with pytest.raises(UserError, match="line 3 is longer than"):
        load_prompts(spec)


def test_a_template_csv_with_too_many_columns_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_COLUMNS", 3)
    path = tmp_path / "t.csv"
    path.write_text("name,family,text,x\na,f,{goal},y\n")
    with pytest.raises(UserError, match="4 columns"):
        load_templates(path)


# --- item 15: messages, not tracebacks ---------------------------------------------------


def test_deep_yaml_is_a_user_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("label: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(UserError, match="nest more than"):
        SweepSpec.from_yaml(path)


def test_deep_json_in_config_json_is_a_user_error(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir, tmp_path)
    (model / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(UserError, match="config.json nests its values too deep"):
        preflight.preflight(_spec(model), tmp_path / "store")


def test_a_deep_jsonl_line_is_a_user_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(UserError, match="deep.jsonl:1 nests its values too deep"):
        read_table(path)


def test_a_text_size_in_config_json_names_the_key(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir, tmp_path, num_hidden_layers="two")
    with pytest.raises(UserError, match="num_hidden_layers is 'two', not a size"):
        preflight.preflight(_spec(model), tmp_path / "store")


def test_a_text_size_is_never_repeated_by_a_huge_one(tiny_model_dir, tmp_path):
    # "ab" * (hidden_size // heads) was a 2^22-character string, then multiplied again
    model = _model(
        tiny_model_dir, tmp_path, num_key_value_heads="ab", hidden_size=1 << 22,
        num_attention_heads=1,
    )  # fmt: skip
    with pytest.raises(UserError, match="num_key_value_heads is 'ab'"):
        preflight.preflight(_spec(model), tmp_path / "store")


def test_an_absurd_size_in_config_json_is_refused(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir, tmp_path, hidden_size=10**30)
    with pytest.raises(UserError, match="hidden_size is .*not a size"):
        preflight.preflight(_spec(model), tmp_path / "store")


def _truncate_weights(model: Path) -> None:
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])


def _text_hidden_size(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_size": "64"}))


def _unknown_dtype(model: Path) -> None:
    data = (model / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    head = data[8 : 8 + n].replace(b'"F32"', b'"X99"')
    (model / "model.safetensors").write_bytes(data[:8] + head + data[8 + n :])


@pytest.mark.parametrize("damage", [_truncate_weights, _text_hidden_size, _unknown_dtype])
def test_a_malformed_model_fails_to_load_with_a_user_error(tiny_model_dir, tmp_path, damage):
    from landscape_core.engine.models import load_model

    model = _model(tiny_model_dir, tmp_path)
    damage(model)
    with pytest.raises(UserError, match=f"could not load the model from {model}"):
        load_model(ModelSpec(kind="local", path=str(model), device="cpu"), tmp_path)
