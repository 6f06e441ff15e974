"""The GPU check runs on CPU with its tiny config, so it cannot rot while no GPU is at hand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOSING = re.compile(
    r"^gpu_speedup_vs_generate_b4=(?P<speedup>[\d.]+) floor_ratio=(?P<floor>[\d.]+) "
    r"perturb_share=(?P<share>[\d.]+) identical=(?P<same>\d+)/(?P<n>\d+)$"
)


def test_the_gpu_check_runs_tiny_on_cpu_and_closes_with_its_figures():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    closing = CLOSING.match(lines[-1])
    assert closing, lines[-1]
    assert int(closing["n"]) == 16
    assert closing["same"] == closing["n"]  # the decoder answers as HF generate, token for token
    assert float(closing["speedup"]) > 0 and float(closing["floor"]) > 0
    assert 0 < float(closing["share"]) < 1
    assert "restore_error_max=0" in lines  # theta_0 restored bit for bit
    figures = {line.split("=")[0].split("] ")[-1] for line in lines if "=" in line}
    for name in (
        "decoder_tokens_per_s", "generate_b4_tokens_per_s", "generate_b16_tokens_per_s",
        "perturb_restore_s", "peak_memory_gib", "restore_error", "identical_float32",
    ):  # fmt: skip
        assert name in figures, name
