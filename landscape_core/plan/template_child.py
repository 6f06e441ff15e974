"""The child process that renders a model's chat template, under limits it sets itself.

Run as a script (``python -I template_child.py``) by ``tokens.render_chats``: it reads
one JSON request on stdin and writes one JSON answer on stdout. It imports nothing of
this project, so isolated mode (no PYTHONPATH, no current directory) can run it.

Why a child process and not only Jinja's sandbox: the sandbox stops a template from
reaching Python's internals, not from spending. ``{{ 'A' * 300000000 }}`` took the
Streamlit server to 6.8 GB and an abort, and two nested ``range(100000)`` loops run for
hours. Bounding that inside the sandbox means intercepting every operator, filter and
loop that can grow a string or spin (``*``, ``~``, ``join``, ``format``, ``for`` over a
long string, recursive macros...), and each one missed is unbounded again. The kernel
bounds them all at once: the child caps its own address space (RLIMIT_AS) and CPU
seconds (RLIMIT_CPU), the parent its wall time, and the child refuses an answer longer
than the request allows. The price is one process start (~0.1 s) per preflight, for
all prompts together.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Refused(Exception):
    """The template's own ``raise_exception``: it does not accept the conversation."""


def raise_exception(message: str) -> None:
    raise Refused(message)


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process; where a limit is refused (macOS's RLIMIT_AS) the wall timeout stays."""
    for name, value in (("RLIMIT_AS", memory_bytes), ("RLIMIT_CPU", cpu_seconds)):
        kind = getattr(resource, name, None)
        if kind is None:
            continue
        hard = resource.getrlimit(kind)[1]
        soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
        with contextlib.suppress(ValueError, OSError):  # above the hard limit, or refused
            resource.setrlimit(kind, (soft, hard))


def render(request: dict[str, Any]) -> dict[str, Any]:
    """Each conversation through the template, set up as transformers sets up its own."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.globals["raise_exception"] = raise_exception
    try:
        template = env.from_string(request["template"])
    except TemplateError as exc:
        return {"error": f"does not parse: {exc}"}
    texts = []
    for conversation, cap in zip(request["conversations"], request["caps"], strict=True):
        parts, size = [], 0
        try:
            for part in template.generate(
                messages=conversation,
                add_generation_prompt=request["add_generation_prompt"],
                **request["special"],
            ):
                size += len(part)
                if size > cap:
                    return {"error": f"writes more than {cap:,} characters for one prompt"}
                parts.append(part)
        except Refused as exc:
            return {"error": f"refused the conversation: {exc}"}
        except MemoryError:
            return {"error": "needs more memory than a chat template may use"}
        except (TemplateError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return {"error": f"failed: {exc}"}
        texts.append("".join(parts))
    return {"texts": texts}


def main() -> None:
    request = json.load(sys.stdin)
    _limit(request["memory_bytes"], request["cpu_seconds"])
    try:
        answer = render(request)
    except MemoryError:
        answer = {"error": "needs more memory than a chat template may use"}
    except RecursionError:
        answer = {"error": "recurses too deep"}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
