"""A run as an Inspect AI eval log (JSON), so ``inspect view`` can open it.

Written by Inspect's documented log schema (``inspect_ai.log.EvalLog``, format version
2), without importing inspect_ai: it is a test-only dependency, and this module stays
torch-free. One sample per prompt and point; its score is the judge's verdict (1.0 a
refusal, 0.0 a compliance; none while unscored), and its metadata carries the point's
coordinates, the three-state verdict and people's labels, as the CSV export does.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd

from landscape_core.readers.export import answers_export
from landscape_core.store.runs import Store

LOG_VERSION = 2  # inspect_ai's EvalLog.version for this layout
TASK = "safety-landscape"
# per-answer columns that become sample metadata (the run's own go in eval.metadata)
SAMPLE_METADATA = ("idx", "rep", "alpha", "beta", "point_key", "prompt_index", "state",
                   "matched", "n_tokens", "stop_reason", "coherence_nll", "repetition",
                   "human_label", "labeller")  # fmt: skip


def _utc(epoch: float | None) -> str:
    """An ISO 8601 time with its UTC offset, as Inspect's UtcDatetimeStr reads it."""
    return dt.datetime.fromtimestamp(epoch or 0.0, dt.UTC).isoformat()


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python ones, NaN and NA as null."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _sample(row: Any, model: str, judge: str) -> dict[str, Any]:
    text = "" if _plain(row.text) is None else str(row.text)
    reply = {"role": "assistant", "content": text, "source": "generate"}
    sample: dict[str, Any] = {
        "id": f"{int(row.idx)}-{int(row.prompt_index)}",  # point index - prompt index
        "epoch": 1,
        "input": str(row.prompt),
        "target": "refusal",  # what an aligned model answers a harmful prompt with
        "messages": [{"role": "user", "content": str(row.prompt), "source": "input"}, reply],
        "output": {
            "model": model,
            "choices": [
                {
                    "message": reply,
                    "stop_reason": "max_tokens" if row.stop_reason == "length" else "stop",
                }
            ],
        },  # fmt: skip
        "metadata": {name: _plain(getattr(row, name)) for name in SAMPLE_METADATA},
    }
    refused = _plain(row.refused)
    if refused is not None:
        sample["scores"] = {
            judge: {
                "value": float(refused),
                "answer": "refused" if refused else "complied",
                "explanation": _plain(row.matched),
                "metadata": {"state": _plain(row.state)},
            }
        }
    return sample


def inspect_log(store: Store, run: dict[str, Any], judge: str) -> dict[str, Any]:
    """The run's answers under ``judge`` as an Inspect eval log (a JSON-ready dict)."""
    frame = answers_export(store, run, judge)
    model = f"landscape/{run['provenance']['model']['name']}"
    samples = [_sample(row, model, judge) for row in frame.itertuples(index=False)]
    scored = frame.refused.dropna().astype(float)
    done = not store.pending(run["run_id"])
    metrics = {}
    if len(scored):
        metrics = {
            "refusal_rate": {"name": "refusal_rate", "value": float(scored.mean())},
            "asr": {"name": "asr", "value": float(100 * (1 - scored.mean()))},
        }
    spec = run["spec"]
    return {
        "version": LOG_VERSION,
        "status": "success" if done else "started",
        "eval": {
            "eval_id": run["run_id"],
            "run_id": run["run_id"],
            "created": _utc(run.get("created")),
            "task": TASK,
            "task_id": run["run_id"],
            "task_display_name": run.get("label") or run["run_id"],
            "task_args": {"grid": spec.get("grid"), "directions": spec.get("directions")},
            "dataset": {
                "name": spec["prompts"]["source"],
                "samples": len(samples),
                "sample_ids": [s["id"] for s in samples],
            },
            "model": model,
            "config": {},
            "metadata": {"spec": spec, "provenance": run["provenance"], "judge": judge},
        },
        "plan": {
            "name": "plan",
            "steps": [
                {
                    "solver": "perturb-and-generate",
                    "params": {"max_new_tokens": spec["generation"]["max_new_tokens"]},
                }
            ],
        },  # fmt: skip
        "results": {
            "total_samples": len(samples),
            "completed_samples": len(samples),
            "scores": [{"name": judge, "scorer": judge, "metrics": metrics}],
        },
        "stats": {"started_at": _utc(run.get("created"))},
        "samples": samples,
    }
