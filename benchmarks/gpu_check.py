"""GPU check: the sweep engine on Llama-shaped models, against HF generate and the floor.

A GPU machine here has no network and takes only a few MiB of carried files, so the
models are built from Llama configs with random weights (fixed seed) on the device:
decoding speed does not depend on the weights' values. The prompts are token ids
written as words ``t<id>`` for a word-level tokenizer built in-process, shaped like
the bench's AdvBench prompts (a shared prefix, then each prompt's own tokens).

For each model it prints one line per figure, measured in this run:

- the sweep decoder's generated tokens/s at the bench shape, and HF ``generate``'s
  at batch 4 (the reference's setting) and at the decoder's batch;
- the ratio of the decoder's time to the bandwidth floor: every decoding step reads
  the weights and the KV cache once, at the device's measured copy bandwidth;
- perturb + restore time per point (``engine.perturb.Perturber``, directions cached
  as the memory plan decides) and its share of a point (perturb + restore + decode);
- peak memory against the project's estimate (``plan.resources.plan_memory``, made
  by ``engine.session.Session`` for the same spec);
- ``max|theta_restored - theta_0|`` against a copy of theta_0 taken before anything
  was perturbed (it must be 0);
- for the small model, the decoder's answers against HF ``generate`` at batch 1,
  greedy, over 16 prompts at the origin, token for token (and where they differ, at
  which token), in the model's dtype and, when that is not float32, in float32.

The last line reads
``gpu_speedup_vs_generate_b4=… floor_ratio=… perturb_share=… identical=…/16``
(the largest model's figures; ``identical`` from the small model in its dtype).

    python benchmarks/gpu_check.py            # CUDA: 1B and 8B shapes, bfloat16
    python benchmarks/gpu_check.py --tiny     # a tiny config, float32 (also on CPU)

Without CUDA it runs the tiny config on CPU in a few seconds; tests/test_gpu_check.py
does that, so the script cannot rot while no GPU is at hand. It needs torch,
transformers, peft, safetensors, tokenizers, numpy and pandas, plus the project's
own modules (which also import pyyaml and jinja2).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from landscape_core.engine.decoder import generate  # noqa: E402
from landscape_core.engine.models import LoadedModel  # noqa: E402
from landscape_core.engine.perturb import unique_parameters  # noqa: E402
from landscape_core.engine.session import Session  # noqa: E402
from landscape_core.plan.resources import GiB, MemoryEstimate  # noqa: E402
from landscape_core.spec.config import GenerationSpec, SweepSpec  # noqa: E402

SEED = 0
PAD, EOS = 0, 1  # token ids: "t0" pads, "t1" ends an answer
IDENTITY_PROMPTS = 16
ALPHAS = (0.05, -0.1, 0.15)  # perturb + restore is timed at these points
# Weights ~ N(0, (INIT_GAIN / sqrt(hidden))^2). With HF's default 0.02 the residual
# stream stays the last token's embedding and a tied head echoes it forever, so
# token-for-token identity would be trivial; this gain (0.3 for the tiny config, as
# tests/conftest.py's) gives varied answers with finite bf16 logits (1B on CPU: logit
# std 2.4, top logits 0.3-0.4 apart).
INIT_GAIN = 2.4

# Llama-3.2-1B and Llama-3.1-8B shapes; a tiny one for CPU
CONFIGS: dict[str, dict] = {
    "tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=512, max_position_embeddings=512,
        tie_word_embeddings=True,
    ),
    "1b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
        rope_theta=500000.0, tie_word_embeddings=True,
    ),
    "8b": dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
        rope_theta=500000.0, tie_word_embeddings=False,
    ),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Shape:
    """What one point generates: prompts, their lengths, new tokens, the decoder's batch."""

    prompts: int
    prefix: int  # tokens shared by every prompt (chat template and system prompt)
    own: tuple[int, int]  # each prompt's own tokens: lowest, highest
    new_tokens: int
    batch: int  # the decoder's (runtime.batch_size)
    b4_prompts: int  # prompts HF generate answers at batch 4 (its rate is per batch)


# The bench's AdvBench prompts are ~43 tokens, 24 of them shared; the anchor
# is 80 prompts x 64 new tokens; batch 80 is runtime.batch_size's default.
BENCH = Shape(prompts=80, prefix=24, own=(12, 28), new_tokens=64, batch=80, b4_prompts=32)
TINY = Shape(prompts=32, prefix=8, own=(4, 12), new_tokens=16, batch=16, b4_prompts=16)


@dataclasses.dataclass(frozen=True)
class Figures:
    """One model's figures, for the closing line."""

    decoder_tps: float
    b4_tps: float
    floor_ratio: float
    perturb_share: float
    restore_error: float
    identical: int | None = None


def emit(name: str, line: str) -> None:
    print(f"[{name}] {line}", flush=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Clock:
    """Wall time of a ``with`` block, the device's queued work included."""

    def __init__(self, device: str) -> None:
        self.device, self.s = device, 0.0

    def __enter__(self) -> Clock:
        sync(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.s = time.perf_counter() - self._t0


def copy_bandwidth(device: str) -> float:
    """Bytes/s of a device-to-device copy, counting bytes read and written."""
    n = (1 << 30) if device == "cuda" else (64 << 20)
    src = torch.ones(n // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    reps = 10
    with Clock(device) as clock:
        for _ in range(reps):
            dst.copy_(src)
    return 2 * n * reps / clock.s


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose words are ``t<id>``: text and ids map one to one."""
    vocab = {f"t{i}": i for i in range(vocab_size)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="t0", eos_token="t1", unk_token="t0"
    )
    tok.padding_side = "left"
    return tok


def bench_prompts(shape: Shape, vocab_size: int) -> list[str]:
    gen = torch.Generator().manual_seed(SEED)
    draw = lambda n: torch.randint(2, vocab_size, (n,), generator=gen).tolist()  # noqa: E731
    prefix = draw(shape.prefix)
    lo, hi = shape.own
    lengths = torch.randint(lo, hi + 1, (shape.prompts,), generator=gen).tolist()
    return [" ".join(f"t{i}" for i in prefix + draw(n)) for n in lengths]


def build_model(name: str, device: str, dtype: torch.dtype) -> LlamaForCausalLM:
    """A Llama of ``name``'s shape with random weights (seeded), built on the device."""
    torch.manual_seed(SEED)
    shape = CONFIGS[name]
    config = LlamaConfig(
        **shape, initializer_range=INIT_GAIN / shape["hidden_size"] ** 0.5,
        pad_token_id=PAD, eos_token_id=EOS, bos_token_id=EOS,
    )  # fmt: skip
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config.pad_token_id = PAD
    model.generation_config.eos_token_id = EOS
    return model.eval()


def sweep_spec(device: str, dtype: str, shape: Shape) -> SweepSpec:
    return SweepSpec.from_dict(
        {
            "model": {"device": device, "dtype": dtype, "chat_format": "plain"},
            "directions": [{"kind": "random", "seed": 123}],
            "grid": [{"start": -0.2, "stop": 0.2, "num": 9}],
            "generation": {"max_new_tokens": shape.new_tokens},
            "runtime": {"batch_size": shape.batch, "coherence": False},
        }
    )


def answer_ids(text: str) -> list[int]:
    return [int(word[1:]) for word in text.split()]


def hf_answers(
    model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, texts: list[str], batch: int,
    new_tokens: int,
) -> tuple[list[list[int]], int]:  # fmt: skip
    """HF ``generate``'s greedy answers (ids, EOS and specials dropped) and tokens made."""
    answers, made = [], 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tok(texts[start : start + batch], return_tensors="pt", padding=True)
            enc = enc.to(model.device)
            out = model.generate(
                **enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=PAD,
                eos_token_id=EOS,
            )  # fmt: skip
            for row in out[:, enc.input_ids.shape[1] :].tolist():
                n = row.index(EOS) + 1 if EOS in row else len(row)
                made += n
                answers.append(answer_ids(tok.decode(row[:n], skip_special_tokens=True)))
    return answers, made


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def identity(
    name: str, model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, texts: list[str],
    shape: Shape, label: str,
) -> int:  # fmt: skip
    """Decoder vs HF generate at batch 1, token for token; the count of identical answers."""
    texts = texts[:IDENTITY_PROMPTS]
    ours = generate(
        model, tok, texts, GenerationSpec(max_new_tokens=shape.new_tokens),
        batch_size=shape.batch, add_special_tokens=True,
    )  # fmt: skip
    truth, _ = hf_answers(model, tok, texts, 1, shape.new_tokens)
    diffs = [first_difference(answer_ids(g.text), t) for g, t in zip(ours, truth, strict=True)]
    same = sum(d is None for d in diffs)
    where = ", ".join(f"prompt {i} at token {d}" for i, d in enumerate(diffs) if d is not None)
    emit(
        name,
        f"identical_{label}={same}/{len(texts)} (decoder at batch {shape.batch} vs HF generate "
        f"at batch 1, greedy, at the origin){'; differ: ' + where if where else ''}",
    )
    return same


def peak_memory(device: str) -> tuple[int, str]:
    if device == "cuda":
        return torch.cuda.max_memory_allocated(), "peak GPU memory allocated by torch"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return rss, "peak RSS of the whole process (CPU: the base copy is spilled to a file)"


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """The sweep side of one model: the plan, perturb + restore, the decoder."""

    first_s: float  # the first set + restore, which draws (and caches) the directions
    perturb_s: float  # set + restore per point, directions ready
    decode_s: float
    tokens: int
    estimate: MemoryEstimate
    peak: int
    peak_what: str


def run_sweep(name: str, model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, texts: list[str],
              shape: Shape, device: str) -> SweepRun:  # fmt: skip
    """Open the project's Session on the model and time what a sweep's point does."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    spec = sweep_spec(device, dtype, shape)
    with tempfile.TemporaryDirectory() as root:
        loaded = LoadedModel(model=model, tokenizer=tok, device=device, dtype=dtype)
        with Clock(device) as opening:
            session = Session(spec, loaded, Path(root), texts)
        plan = session.memory
        emit(
            name,
            f"plan: base copy in {plan.base_copy}, directions cached {plan.cache_directions} "
            f"(session opened in {opening.s:.1f} s)",
        )
        times = []
        with session.perturber() as perturber:
            with Clock(device) as first:
                perturber.set(ALPHAS[0])
                perturber.restore()
            for alpha in ALPHAS if plan.cache_directions else ALPHAS[:1]:
                with Clock(device) as point:
                    perturber.set(alpha)
                    perturber.restore()
                times.append(point.s)
        warm = GenerationSpec(max_new_tokens=4)
        generate(model, tok, texts[:8], warm, batch_size=8, add_special_tokens=True)
        with Clock(device) as decoding:
            gens = session.generate(session.texts, session.add_special, None)
        del session, perturber
    peak, what = peak_memory(device)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return SweepRun(
        first.s, sum(times) / len(times), decoding.s, sum(g.n_tokens for g in gens),
        plan.estimate, peak, what,
    )  # fmt: skip


def floor_seconds(model: LlamaForCausalLM, texts: list[str], shape: Shape, bandwidth: float,
                  weight_bytes: int) -> float:  # fmt: skip
    """The decoder's bandwidth floor: each step reads the weights and the batch's KV cache."""
    cfg = model.config
    head = cfg.hidden_size // cfg.num_attention_heads
    size = next(model.parameters()).element_size()
    kv_row = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head * size  # per token
    mean_len = sum(len(t.split()) for t in texts) / len(texts) + shape.new_tokens / 2
    batches = math.ceil(shape.prompts / shape.batch)
    rows = shape.prompts / batches
    return batches * shape.new_tokens * (weight_bytes + rows * mean_len * kv_row) / bandwidth


def check_model(name: str, device: str, dtype: torch.dtype, shape: Shape, bandwidth: float,
                small: bool) -> Figures:  # fmt: skip
    dtype_name = str(dtype).removeprefix("torch.")
    with Clock(device) as building:
        model = build_model(name, device, dtype)
    tok = word_tokenizer(model.config.vocab_size)
    params = unique_parameters(model)
    n_params = sum(p.numel() for p in params.values())
    weight_bytes = sum(p.numel() * p.element_size() for p in params.values())
    emit(
        name,
        f"model: {n_params / 1e6:,.1f}M parameters, {weight_bytes / GiB:.2f} GiB in {dtype_name}, "
        f"random weights (seed {SEED}), built in {building.s:.1f} s",
    )
    texts = bench_prompts(shape, model.config.vocab_size)
    theta0 = {n: p.detach().to("cpu", copy=True) for n, p in params.items()}  # independent
    run = run_sweep(name, model, tok, texts, shape, device)
    emit(name, f"directions_build_s={run.first_s:.2f} (first set + restore: draws the directions)")
    emit(name, f"perturb_restore_s={run.perturb_s:.4f} per point")
    error = max(  # against the copy taken before the session, tensor by tensor
        float((p.detach().float() - theta0[n].to(p.device).float()).abs().max())
        for n, p in params.items()
    )
    del theta0
    emit(name, f"restore_error={error:g} (max|theta_restored - theta_0|, must be 0)")
    dec_tps = run.tokens / run.decode_s
    emit(
        name,
        f"decoder_tokens_per_s={dec_tps:.1f} (batch {shape.batch}, {shape.prompts} prompts x "
        f"{shape.new_tokens} new tokens: {run.tokens} tokens in {run.decode_s:.2f} s)",
    )
    share = run.perturb_s / (run.perturb_s + run.decode_s)
    emit(name, f"perturb_share={share:.4f} (perturb + restore over perturb + restore + decode)")
    emit(
        name,
        f"peak_memory_gib={run.peak / GiB:.2f} vs estimate_gib={run.estimate.total / GiB:.2f} "
        f"({run.peak_what}; estimate {run.estimate.describe()})",
    )
    floor_s = floor_seconds(model, texts, shape, bandwidth, weight_bytes)
    ratio = run.decode_s / floor_s
    steps = math.ceil(shape.prompts / shape.batch) * shape.new_tokens
    emit(
        name,
        f"floor_ratio={ratio:.2f} (decoder {run.decode_s:.2f} s vs floor {floor_s:.3f} s: "
        f"{steps} steps x (weights + KV) at {bandwidth / 1e9:.0f} GB/s)",
    )
    hf_answers(model, tok, texts[:4], 4, 4)  # warm-up
    with Clock(device) as b4:
        _, b4_made = hf_answers(model, tok, texts[: shape.b4_prompts], 4, shape.new_tokens)
    b4_tps = b4_made / b4.s
    emit(
        name,
        f"generate_b4_tokens_per_s={b4_tps:.1f} ({shape.b4_prompts} prompts: {b4_made} tokens "
        f"in {b4.s:.2f} s)",
    )
    with Clock(device) as bb:
        _, bb_made = hf_answers(model, tok, texts, shape.batch, shape.new_tokens)
    emit(
        name,
        f"generate_b{shape.batch}_tokens_per_s={bb_made / bb.s:.1f} ({bb_made} tokens in "
        f"{bb.s:.2f} s)",
    )
    emit(name, f"speedup_vs_generate_b4={dec_tps / b4_tps:.2f}")
    same = None
    if small:
        same = identity(name, model, tok, texts, shape, dtype_name)
        if dtype != torch.float32:
            identity(name, model.float(), tok, texts, shape, "float32")
    del model, params
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return Figures(dec_tps, b4_tps, ratio, share, error, same)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny config (the default on CPU)")
    parser.add_argument("--models", default="1b,8b", help="CUDA: comma-separated, of 1b, 8b")
    parser.add_argument(
        "--dtype", choices=("bfloat16", "float32"), help="default: bfloat16 on CUDA, else float32"
    )
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tiny = args.tiny or device == "cpu"
    names = ["tiny"] if tiny else [m.strip() for m in args.models.split(",")]
    default = "float32" if device == "cpu" or tiny else "bfloat16"
    dtype = getattr(torch, args.dtype or default)
    shape = TINY if tiny else BENCH
    if tiny:  # a 64-wide model gains nothing from threads, and a busy CPU's barriers cost 10x
        torch.set_num_threads(1)
    torch.manual_seed(SEED)
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    bandwidth = copy_bandwidth(device)
    print(
        f"device={device} ({card}) torch={torch.__version__} dtype={dtype} "
        f"copy_bandwidth_gb_s={bandwidth / 1e9:.1f}",
        flush=True,
    )
    figures = {}
    for i, name in enumerate(names):
        figures[name] = check_model(name, device, dtype, shape, bandwidth, small=i == 0)
    last, first = figures[names[-1]], figures[names[0]]
    print(f"restore_error_max={max(f.restore_error for f in figures.values()):g}", flush=True)
    print(
        f"gpu_speedup_vs_generate_b4={last.decoder_tps / last.b4_tps:.2f} "
        f"floor_ratio={last.floor_ratio:.2f} perturb_share={last.perturb_share:.4f} "
        f"identical={first.identical}/{IDENTITY_PROMPTS}",
        flush=True,
    )


if __name__ == "__main__":
    main()
