"""Prompt lengths before anything loads: a model's tokenizer.json and chat template.

Preflight needs them (a prompt longer than the model's context can kill a worker, and
the memory estimate needs the longest prompt), and preflight must not import torch or
transformers. The ``tokenizers`` library and a sandboxed Jinja environment set up as
transformers sets up its own render the same text and count the same tokens; the
engine checks again with the real tokenizer once the model is loaded. The template is
a program from whoever made the model, and preflight runs in the Streamlit server, so
it renders in a child process with bounded memory, time and output
(``template_child``, which says why a child and not only the sandbox).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel

from landscape_core.errors import UserError
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.gguf_meta import read_gguf
from landscape_core.spec.config import GenerationSpec, SweepSpec

CHILD = Path(__file__).with_name("template_child.py")
TEMPLATE_CPU_S = 5  # CPU seconds to render every prompt; real templates take ms each
START_S = 10.0  # the child's start on a busy machine, on top of its CPU seconds
TEMPLATE_MEMORY = 1 << 30  # the child's address space, on top of 8 x its request
TEMPLATE_EXTRA_CHARS = 1 << 20  # what a template may add to one prompt's messages (x2)
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")
CONTROL = 3  # a GGUF token type: special tokens such as <|im_start|>


class FileTokenizer:
    """Enough of a tokenizer for ``render_prompts`` and for counting tokens."""

    def __init__(
        self, tokenizer: Tokenizer, chat_template: Any, special: dict[str, str | None], where: Path
    ) -> None:
        self._tokenizer = tokenizer
        self.chat_template = chat_template
        if isinstance(self.chat_template, list):  # named templates: the default one
            named = {t.get("name"): t.get("template") for t in self.chat_template}
            self.chat_template = named.get("default")
        self._special = special
        self._where = where

    @classmethod
    def from_directory(cls, root: Path) -> FileTokenizer:
        """From ``tokenizer.json`` and ``tokenizer_config.json`` (and a chat template file)."""
        try:
            tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
            config = json.loads((root / "tokenizer_config.json").read_text())
        except Exception as exc:  # tokenizers raises plain Exception on a bad file
            raise UserError(f"cannot read the tokenizer in {root}: {exc}") from None
        template = root / "chat_template.jinja"
        chat_template = template.read_text() if template.is_file() else config.get("chat_template")
        special = {k: _token_text(config.get(k)) for k in SPECIAL_TOKENS}
        return cls(tokenizer, chat_template, special, root)

    @classmethod
    def from_gguf(cls, path: Path) -> FileTokenizer | None:
        """From a GGUF file's own vocabulary, merges and chat template.

        That is what the bundled model's first conversion writes as ``tokenizer.json``
        (a byte-level BPE), so a sweep's estimate is the same before it and after.
        None for a GGUF tokenizer of another kind (SentencePiece and others).
        """
        meta = read_gguf(path).tokenizer
        if meta.kind != "gpt2":
            return None
        merges = [tuple(m.split(" ", 1)) for m in meta.merges]
        tokenizer = Tokenizer(BPE({t: i for i, t in enumerate(meta.tokens)}, merges))
        tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
        control = zip(meta.tokens, meta.token_types, strict=True)
        tokenizer.add_special_tokens([t for t, kind in control if kind == CONTROL])
        return cls(tokenizer, meta.chat_template, meta.special, path)

    def apply_chat_template(
        self,
        conversations: list[list[dict[str, str]]],
        add_generation_prompt: bool = False,
        **_: Any,
    ) -> list[str]:
        """A batch of conversations as text, rendered in one bounded child process."""
        return render_chats(
            self.chat_template or "", conversations, self._special, add_generation_prompt,
            self._where,
        )  # fmt: skip

    def count(self, texts: Sequence[str], add_special_tokens: bool) -> list[int]:
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [len(e.ids) for e in encoded]

    def added_specials(self, text: str) -> tuple[str, str]:
        """The tokens the tokenizer itself puts before and after ``text``, as text.

        A raw chat format asks for them (a BOS, usually): a transcript shows them, since
        the model read them though the formatted prompt does not hold them.
        """
        bare = self._tokenizer.encode(text, add_special_tokens=False)
        full = self._tokenizer.encode(text, add_special_tokens=True)
        n = len(bare.ids)
        for start in range(len(full.ids) - n + 1):
            if full.ids[start : start + n] == bare.ids:
                return "".join(full.tokens[:start]), "".join(full.tokens[start + n :])
        return "", ""


def file_tokenizer(root: Path) -> FileTokenizer | None:
    """The tokenizer of a model directory or GGUF file, read from its files.

    None without a ``tokenizer.json``, or for a GGUF tokenizer that is not a
    byte-level BPE.
    """
    if root.is_file():
        return FileTokenizer.from_gguf(root)
    if (root / "tokenizer.json").is_file():
        return FileTokenizer.from_directory(root)
    return None


def render_chats(
    template: str,
    conversations: list[list[dict[str, str]]],
    special: dict[str, str | None],
    add_generation_prompt: bool,
    where: Path,
) -> list[str]:
    """Each conversation through ``template`` in a child process; any overrun is a UserError.

    The child may use ``TEMPLATE_CPU_S`` of CPU, ``TEMPLATE_MEMORY`` of address space and
    write, per prompt, twice its messages plus ``TEMPLATE_EXTRA_CHARS``.
    """
    caps = [2 * sum(len(m["content"]) for m in c) + TEMPLATE_EXTRA_CHARS for c in conversations]
    request = json.dumps(
        {
            "template": template,
            "conversations": conversations,
            "caps": caps,
            "special": special,
            "add_generation_prompt": add_generation_prompt,
            "cpu_seconds": TEMPLATE_CPU_S,
        }
    ).encode()
    request = request[:-1] + b', "memory_bytes": %d}' % (TEMPLATE_MEMORY + 8 * len(request))
    fix = "fix the template, or set model.chat_format to a raw format such as llama2"
    try:
        done = subprocess.run(
            [sys.executable, "-I", str(CHILD)],
            input=request,
            capture_output=True,
            timeout=TEMPLATE_CPU_S + START_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise UserError(
            f"the chat template in {where} ran past its {TEMPLATE_CPU_S} s limit "
            f"rendering {len(conversations)} prompt(s): {fix}"
        )
    try:
        answer = json.loads(done.stdout)
    except ValueError:  # it died without answering (out of memory inside C code)
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise UserError(
            f"the chat template in {where} stopped its renderer (exit code "
            f"{done.returncode}, {tail[0][:200]}): {fix}"
        ) from None
    if "error" in answer:
        raise UserError(f"the chat template in {where} {answer['error'][:500]}: {fix}")
    return answer["texts"]


def _token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def prompt_lengths(spec: SweepSpec, prompts: Sequence[str], root: Path) -> list[int] | None:
    """Each prompt's length in tokens as the model reads it.

    None without a tokenizer file, or from a GGUF file whose tokenizer is not a
    byte-level BPE: the engine checks once the model is loaded.
    """
    tokenizer = file_tokenizer(root)
    if tokenizer is None:
        return None
    texts, add_special = render_prompts(
        tokenizer, tuple(prompts), spec.system_prompt, spec.model.chat_format
    )
    return tokenizer.count(texts, add_special)


def check_context(
    lengths: Sequence[int],
    prompts: Sequence[str],
    context: int | None,
    generation: GenerationSpec,
) -> int:
    """The longest prompt's length; a UserError naming it when it cannot fit the context."""
    if not lengths:
        return 0
    row = max(range(len(lengths)), key=lengths.__getitem__)
    longest = lengths[row]
    if context and longest + generation.max_new_tokens > context:
        raise UserError(
            f"prompt {row} of the set ({prompts[row][:60]!r}...) is {longest} tokens as the "
            f"model reads it; with max_new_tokens {generation.max_new_tokens} that exceeds "
            f"the model's context of {context} tokens: drop or shorten that prompt, or "
            "lower max_new_tokens"
        )
    return longest
