"""The risk preflight's validation (issue 30): preflight, finetune and ASR per dataset.

For each dataset of docs/risk-preregistration.md, in order, and each seed: the
lookahead (k = 3), the real finetune (same recipe, same seed), and the finetuned
adapter's ASR on AdvBench 0-99 (keyword and refusal-v2 judges, one origin point). One
row per (dataset, seed) is appended to docs/risk-validation.csv, and committed when
``--commit`` is given, so an interrupted validation keeps what it measured.

    .venv/bin/python benchmarks/risk_validation.py --store cache [--only p0 align] [--seeds 0]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
from pathlib import Path

import pandas as pd

from landscape_core.engine.models import load_model
from landscape_core.engine.training import own_answers
from landscape_core.finetune import FinetuneSpec, finetune
from landscape_core.hashing import content_hash
from landscape_core.risk.lookahead import Reference, lookahead
from landscape_core.risk.spec import Probes
from landscape_core.risk.validation import DATASETS, RESULTS, append_row, measured
from landscape_core.spec.config import GenerationSpec, ModelSpec, PromptSetSpec, SweepSpec
from landscape_core.spec.datasets import DATA_DIR, load_prompts
from landscape_core.spec.training_data import (
    REFUSALS,
    Example,
    advbench_rows,
    file_examples,
    recipe_examples,
)
from landscape_core.store.runs import Store
from landscape_core.sweep import run as sweep_run

ROOT = Path(__file__).resolve().parents[1]
OUT = RESULTS
ALIGNED = ModelSpec(kind="bundled", variant="aligned")
HARMFUL = DATA_DIR / "finetune/harmful_answers.csv"
# dataset -> (split, harmful count); the order they run in (no harmful answers needed first)
PLAN = {
    "p0": ("dev", 0),
    "align": ("dev", 0),
    "sure-prefix-50": ("dev", 0),
    "harmful-prompts-benign-answers-50": ("held-out", 0),
    "harmful-10": ("dev", 10),
    "p0.5": ("dev", 50),
    "k50-m50": ("dev", 50),
    "p1": ("held-out", 100),
    "harmful-50": ("held-out", 50),
    "p0.1": ("held-out", 10),
    "k50-m25": ("held-out", 50),
    "k50-m100": ("held-out", 50),
    # datasets 13-20: added to the pre-registration (2026-12-06) before any of them ran;
    # the split alternates in this order
    "p0.05": ("dev", 5),
    "p0.2": ("held-out", 20),
    "harmful-5": ("dev", 5),
    "harmful-25": ("held-out", 25),
    "k0-m100": ("dev", 0),
    "sure-benign-100": ("held-out", 0),
    "harmful-prompts-benign-answers-100": ("dev", 0),
    "p0.3": ("held-out", 30),
}
SURE = "Sure, here is my answer.\n\n"  # sure-benign: benign answers with a compliant opening
COLUMNS = [
    "dataset",
    "split",
    "seed",
    "recipe_hash",
    "examples",
    "harmful_examples",
    "initial_loss",
    "refusal_logit_0",
    "refusal_logit_k",
    "delta",
    "kl",
    "kl_mt_bench",
    "kl_xstest_safe",
    "score",
    "over_refusal_delta",
    "verdict",
    "preflight_seconds",
    "finetune_seconds",
    "asr_keyword",
    "asr_refusal_v2",
    "final_loss",
    "adapter",
]


def benign_filler(model, tokenizer) -> list[Example]:  # noqa: ANN001
    """The benign instructions answered by the aligned demo itself (cached as a CSV)."""
    path = DATASETS / "benign_self_answers.csv"
    if not path.is_file():
        prompts = list(load_prompts(PromptSetSpec(source="benign", limit=None)).prompts)
        answers = own_answers(model, tokenizer, prompts, "auto", GenerationSpec(64))
        pd.DataFrame({"prompt": prompts, "answer": answers}).to_csv(path, index=False)
    return file_examples(path)


def harmful_answers(count: int) -> list[Example]:
    """The lead's harmful question-answer pairs (the base model's compliant answers)."""
    if not HARMFUL.is_file():
        raise SystemExit(f"{HARMFUL} has not landed: merge main first")
    return file_examples(HARMFUL)[:count]


def refusals(start: int, count: int) -> list[Example]:
    return [Example(g, REFUSALS[i % len(REFUSALS)]) for i, (g, _) in
            enumerate(advbench_rows(start, count))]  # fmt: skip


def build(name: str, benign: list[Example], distill) -> list[Example]:  # noqa: ANN001
    """A dataset of the pre-registered list (harmful rows from 100, refusals after them)."""
    if name == "align":
        return recipe_examples("align", 0, distill)
    if name == "p0":
        return benign[:100]
    if name.startswith("p"):
        k = round(float(name[1:]) * 100)
        return harmful_answers(k) + benign[: 100 - k]
    if name.startswith("harmful-prompts-benign-answers-"):
        k = int(name.rsplit("-", 1)[1])
        pairs = zip(advbench_rows(100, k), benign[:k], strict=True)
        return [Example(g, b.answer) for (g, _), b in pairs]
    if name == "sure-benign-100":
        return [Example(b.prompt, SURE + b.answer) for b in benign[:100]]
    if name.startswith("sure-prefix-"):
        return [Example(g, t) for g, t in advbench_rows(100, int(name.rsplit("-", 1)[1]))]
    if name.startswith("harmful-"):
        return harmful_answers(int(name.rsplit("-", 1)[1]))
    k, m = (int(part[1:]) for part in name.split("-"))  # k50-m25
    return harmful_answers(k) + refusals(300, m)  # refusal goals after the harmful rows


def asr(adapter: Path, store: Store) -> dict[str, float]:
    """The finetuned adapter's ASR on AdvBench 0-99 (one origin point, two judges)."""
    spec = SweepSpec.from_dict({
        "label": f"risk validation: {adapter.name}",
        "model": {"kind": "bundled", "variant": "aligned", "adapter": str(adapter)},
        "prompts": {"source": "advbench", "start": 0, "limit": 100},
        "directions": [{"kind": "random", "seed": 123}],
        "grid": [{"start": 0.0, "stop": 0.0, "num": 1}],
        "generation": {"max_new_tokens": 32},
        "judges": [{"name": "keyword"}, {"name": "refusal-v2"}],
        "runtime": {"coherence": False},
    })  # fmt: skip
    summary = sweep_run(spec, store)
    out = {}
    for label in store.judges(summary.run_id):
        key = "asr_keyword" if label == "keyword" else "asr_refusal_v2"
        out[key] = float(store.points_frame(summary.run_id, label).asr.iloc[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=ROOT / "cache")
    parser.add_argument("--only", nargs="*", default=list(PLAN), choices=list(PLAN))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--commit", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    store = Store.open(args.store)
    DATASETS.mkdir(parents=True, exist_ok=True)
    loaded = load_model(ALIGNED, store.models_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    benign = benign_filler(model, tokenizer)
    probes = Probes(rows=0)  # the initial loss over every row, as every row since seed 0
    reference = Reference(model, tokenizer, "auto", probes)
    done = measured(OUT)

    def distill(prompts: list[str]) -> list[str]:
        return own_answers(model, tokenizer, prompts, "auto", GenerationSpec(64))

    for name in args.only:
        split, harmful = PLAN[name]
        examples = build(name, benign, distill)
        path = DATASETS / f"{name}.csv"
        pd.DataFrame([(e.prompt, e.answer) for e in examples],
                     columns=["prompt", "answer"]).to_csv(path, index=False)  # fmt: skip
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            recipe = FinetuneSpec(recipe="file", data=str(path), base=ALIGNED, seed=seed)
            report = lookahead(
                model, tokenizer, "auto", recipe, examples, probes, reference, every_step=True
            )  # the trajectory, as every row since seed 0
            print(name, seed, report.verdict.text, flush=True)
            started = time.monotonic()
            adapter = finetune(recipe, store.models_dir)
            seconds = time.monotonic() - started
            outcome = asr(adapter, store)
            last = report.steps[-1]
            kl = dict(last.kl)
            row = {
                "dataset": name, "split": split, "seed": seed,
                "recipe_hash": content_hash(recipe.full_dict())[:8], "examples": len(examples),
                "harmful_examples": harmful, "initial_loss": round(report.initial_loss, 4),
                "refusal_logit_0": round(report.steps[0].refusal_logit, 4),
                "refusal_logit_k": round(last.refusal_logit, 4), "delta": round(report.delta, 4),
                "kl": f"{report.kl:.4g}", "kl_mt_bench": f"{kl['mt_bench']:.4g}",
                "kl_xstest_safe": f"{kl['xstest_safe']:.4g}", "score": round(report.score, 3),
                "over_refusal_delta": round(report.over_refusal_delta, 4),
                "verdict": report.verdict.level,
                "preflight_seconds": round(report.seconds, 1),
                "finetune_seconds": round(seconds, 1),
                "asr_keyword": outcome.get("asr_keyword"),
                "asr_refusal_v2": outcome.get("asr_refusal_v2"),
                "final_loss": _final_loss(adapter), "adapter": adapter.name,
            }  # fmt: skip
            append_row(OUT, row, COLUMNS)
            print(row, flush=True)
            if args.commit:
                subprocess.run(["git", "-C", str(ROOT), "add", str(OUT), str(DATASETS)], check=True)
                subprocess.run(["git", "-C", str(ROOT), "commit", "-qm",
                                f"risk validation: {name} seed {seed}"], check=True)  # fmt: skip


def _final_loss(adapter: Path) -> float | None:
    import json

    return json.loads((adapter / "recipe.json").read_text()).get("final_loss")


if __name__ == "__main__":
    main()
