"""Load a causal LM and its tokenizer from local files, for generation.

The bundled GGUF, a directory of safetensors, a .gguf file, or a Hugging Face id
already in the local HF cache (``plan.model_files`` finds them). Nothing is
downloaded and nothing is unpickled; ``trust_remote_code`` is off unless asked for.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from peft import PeftModel
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from landscape_core.errors import UserError
from landscape_core.hashing import sha256_file
from landscape_core.plan.model_files import (
    BUNDLED_DIR_NAME,
    adapters,
    atomic_directory,
    bundled_gguf,
    model_dir,
    remote_code_files,
)
from landscape_core.plan.resources import resolve_dtype
from landscape_core.spec.config import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: PreTrainedModel  # in eval mode
    tokenizer: PreTrainedTokenizerBase  # left padding, with a pad token
    device: str
    dtype: str


def resolve_device(spec: ModelSpec) -> str:
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for but no CUDA device is visible; use auto or cpu")
    if spec.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec.device


def load_model(spec: ModelSpec, models_dir: Path) -> LoadedModel:
    """Load weights and tokenizer for generation (eval mode, no grad needed)."""
    device = resolve_device(spec)
    dtype = resolve_dtype(spec, device)
    if device == "cpu" and dtype != "float32":
        log.warning("%s on CPU is several times slower than float32", dtype)
    source = model_dir(spec)
    kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if spec.trust_remote_code:
        names = ", ".join(p.name for p in remote_code_files(spec)) or "none found"
        log.warning("trust_remote_code is on: %s may run its own code (%s)", source, names)
    if spec.kind == "bundled":
        source = ensure_bundled_safetensors(models_dir)
    if source.is_file():  # a GGUF, dequantised on load
        load_from, kwargs["gguf_file"] = source.parent, source.name
    else:
        load_from, kwargs["use_safetensors"] = source, True
    if spec.quantization != "none":
        kwargs["quantization_config"] = _bnb_config(spec, device)
    else:
        kwargs["dtype"] = getattr(torch, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, **_tok_kwargs(kwargs))
        model = AutoModelForCausalLM.from_pretrained(load_from, **kwargs)
    except (OSError, ValueError, TypeError, SafetensorError, StrictDataclassError) as exc:
        # a malformed file: a broken safetensors header, a config.json size of the wrong type
        text = str(exc).strip().splitlines()[:3]
        raise UserError(
            f"could not load the model from {source} ({type(exc).__name__}: "
            f"{' '.join(text)[:400]}); re-save it with save_pretrained"
        ) from None
    _clear_gguf_quantizer(model)
    for directory in adapters(spec):
        model = merge_adapter(model, directory)
    if spec.quantization == "none":
        model.to(device)
    model.eval()
    tokenizer.padding_side = "left"  # generation appends on the right
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype)


def merge_adapter(model: PreTrainedModel, directory: Path) -> PreTrainedModel:
    """Fold a peft (LoRA) adapter into the weights: W <- W + (alpha/r) * B @ A."""
    return PeftModel.from_pretrained(model, str(directory)).merge_and_unload()


def _tok_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in ("gguf_file", "trust_remote_code")}


def _clear_gguf_quantizer(model: PreTrainedModel) -> None:
    """A GGUF load leaves a quantizer attached though the weights are plain floats."""
    if getattr(model, "hf_quantizer", None) is not None and _is_gguf(model):
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def _is_gguf(model: PreTrainedModel) -> bool:
    qc = getattr(model.config, "quantization_config", None)
    method = getattr(qc, "quant_method", None)
    return str(getattr(method, "value", method)) == "gguf"


def _bnb_config(spec: ModelSpec, device: str) -> BitsAndBytesConfig:
    if device != "cuda":
        raise UserError(
            f"{spec.quantization} loading needs CUDA (bitsandbytes); on CPU use quantization: none"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("bitsandbytes is not installed: pip install -r requirements-cuda.txt")
    if spec.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True)


def ensure_bundled_safetensors(models_dir: Path) -> Path:
    """A safetensors copy of the bundled GGUF under ``models_dir``, made once.

    Dequantising the GGUF takes ~20 s on 2 cores; the copy loads in about 2 s. The copy
    is keyed by the GGUF's content digest (0.13 s to hash), never its name or size: a
    GGUF rewritten at the same size would otherwise be swept with the old weights under
    the new fingerprint. It is written to a temporary directory and renamed, so an
    interrupted conversion leaves nothing. Two processes (Ray actors on one node)
    convert one at a time: the second finds the copy.
    """
    gguf = bundled_gguf()
    target = models_dir / BUNDLED_DIR_NAME
    stamp = {"source": gguf.name, "sha256": sha256_file(gguf)}
    source_file = target / "source.json"

    def current() -> bool:
        return source_file.is_file() and json.loads(source_file.read_text()) == stamp

    if current():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / f".{BUNDLED_DIR_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if current():
            return target
        log.info("converting the bundled GGUF to safetensors under %s (once)", target)
        with atomic_directory(target) as tmp:
            _convert_gguf(gguf, tmp)
            (tmp / "source.json").write_text(json.dumps(stamp))
        return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` and save it to ``out`` as float32 safetensors with its tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    _clear_gguf_quantizer(model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
