"""Issue 32, defects 2 and 3: the time estimate and the time left, from measured points.

Every timing here is planted in the store; nothing is timed for real.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from landscape_core import sweep
from landscape_core.cli import main
from landscape_core.plan import pace, preflight
from landscape_core.plan.model_files import fingerprint, model_files
from landscape_core.store.jobs import Stage
from landscape_core.store.runs import Store

ROOT = Path(__file__).resolve().parent.parent


def _plant(store: Store, run_id: str, spec, points, fp="fp", device="cpu", n_params=135e6):
    """A run of ``spec`` with finished points (n_prompts, n_tokens, seconds, finished)."""
    provenance = {
        "model": {"name": "m", "fingerprint": fp, "device": device, "n_params": n_params},
        "prompt_set": {"name": "advbench", "hash": "h", "n_prompts": points[0][0]},
    }
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, label, spec_json, provenance_json, n_points, created) "
            "VALUES (?, '', ?, ?, ?, ?)",
            (run_id, json.dumps(spec.to_dict()), json.dumps(provenance), len(points), 0.0),
        )
        for idx, (n_prompts, n_tokens, seconds, finished) in enumerate(points):
            key = f"{run_id}-{idx}"
            conn.execute(
                "INSERT INTO run_points (run_id, idx, point_key, i, j, alpha, beta) "
                "VALUES (?, ?, ?, ?, 0, 0.0, 0.0)",
                (run_id, idx, key, idx),
            )
            conn.execute(
                "INSERT INTO points (point_key, status, n_prompts, n_tokens, seconds, finished) "
                "VALUES (?, 'done', ?, ?, ?, ?)",
                (key, n_prompts, n_tokens, seconds, finished),
            )


def _fingerprint(store: Store, spec) -> str:
    return fingerprint(spec.model, model_files(spec.model, store.file_digest))


# --- the estimate before a launch -----------------------------------------------------


def test_an_estimate_comes_from_this_machines_points_of_the_model_and_says_so(store, tiny_spec):
    spec = tiny_spec()  # 3 points x 3 prompts x 6 tokens
    # 4 earlier points of this model here: 18 slots each in 9 s -> 0.5 s a slot
    _plant(store, "old", spec, [(3, 10, 9.0, 100.0 + k) for k in range(4)],
           fp=_fingerprint(store, spec))  # fmt: skip
    _plant(store, "gpu", spec, [(3, 18, 0.01, 200.0)], fp=_fingerprint(store, spec), device="cuda")
    check = preflight.preflight(spec, store.root, cuda=False, measured=store.measured_pace(spec))
    coherence = 9 * pace.coherence_per_answer(check.n_params, 0.5)
    assert check.seconds == pytest.approx(preflight.LOAD_S + 3 * 18 * 0.5 + coherence)
    assert check.upper == check.seconds and check.measured_points == 4
    assert "from 4 points of this model on this machine" in check.describe()


def test_with_no_history_the_estimate_is_a_range_and_a_first_guess(store, tiny_spec):
    spec = tiny_spec()
    _plant(store, "other", spec, [(3, 10, 9.0, 100.0)], fp="another model")
    check = preflight.preflight(spec, store.root, cuda=False, measured=store.measured_pace(spec))
    assert check.measured_points == 0
    assert check.upper == pytest.approx(check.seconds * pace.FIRST_GUESS_FACTOR)
    text = check.describe()
    assert "first guess: no run of this model here yet" in text
    assert re.search(r"~\d+ s-\d+ (s|min) on this machine", text), text


def test_the_estimate_prices_only_the_points_not_stored_yet(store, tiny_spec):
    """A run's landscapes share their origin, and runs share points (issue 32, item 9).

    The 3-direction run after a 1-direction one was estimated at 1.79x its time.
    """
    one = tiny_spec()  # seed 7: alpha -0.5, 0, 0.5
    three = tiny_spec(directions=[{"kind": "random", "seed": 7, "repeats": 3}])
    whole = preflight.preflight(three, store.root, cuda=False)

    def check():
        return preflight.preflight(
            three, store.root, cuda=False, to_compute=store.points_to_compute(three)
        )

    assert check().to_compute == 7  # 9 grid points, one origin for the 3 landscapes
    sweep.run(one, store)
    after = check()
    assert after.to_compute == 4  # seed 7's three points are stored
    assert after.seconds < whole.seconds
    assert "9 points x 3 prompts (4 to compute, the others stored or shared)" in after.describe()
    sweep.run(three, store)
    assert check().to_compute == 0


def test_the_cli_guard_reads_the_high_end_of_a_first_guess(
    tiny_spec, tmp_path, monkeypatch, capsys
):
    spec = tiny_spec()
    low = preflight.preflight(spec, tmp_path / "probe").seconds
    threshold = 2 * low / 3600  # above the low end, below the high end (10x)
    monkeypatch.setattr(preflight, "CONFIRM_HOURS", threshold)
    monkeypatch.setattr("landscape_core.cli.CONFIRM_HOURS", threshold)
    path = tmp_path / "c.yaml"
    path.write_text(spec.to_yaml())
    assert main(["submit", str(path), "--store", str(tmp_path / "s")]) == 2
    assert "pass --yes" in capsys.readouterr().err  # was: queued, reading the low end
    assert main(["submit", str(path), "--store", str(tmp_path / "s"), "--yes"]) == 0
    assert "first guess" in capsys.readouterr().err  # --yes starts it, and still warns


def test_a_slow_measured_history_makes_the_guard_ask(store, tiny_spec, tmp_path, capsys):
    spec = tiny_spec()
    _plant(store, "slow", spec, [(3, 18, 18 * 200.0, 100.0)], fp=_fingerprint(store, spec))
    path = tmp_path / "c.yaml"
    path.write_text(spec.to_yaml())  # 54 slots at 200 s: 3 h here, seconds by the constants
    assert main(["submit", str(path), "--store", str(store.root)]) == 2
    assert "from 1 points of this model" in capsys.readouterr().err


# --- the time left while a job runs ------------------------------------------------------


def _running_job(store: Store, spec, run_id: str, monkeypatch, **fields) -> None:
    job_id = store.jobs.submit(spec.to_dict(), "t", run_id)
    store.jobs.claim(pid=1)
    store.jobs.update(job_id, **fields)
    monkeypatch.setattr("landscape_core.store.jobs.worker_gone", lambda *a, **k: False)


def _jobs_page(store: Store, monkeypatch) -> str:
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    at = AppTest.from_file(str(ROOT / "pages" / "jobs_page.py"), default_timeout=60).run()
    assert not at.exception
    return " ".join(str(p.proto.text) for p in at.get("progress"))


def _seconds_left(text: str) -> float:
    number, unit = re.search(r"~([\d.]+) (min|s) left", text).groups()
    return float(number) * (60 if unit == "min" else 1)


def test_the_time_left_counts_the_coherence_stage(store, tiny_spec, monkeypatch):
    spec = tiny_spec(generation={"max_new_tokens": 64})
    now = time.time()
    started = now - 30
    # 3 points of 20 prompts, 0.1 s a generated token, the last one just finished
    points = [(20, 100, 10.0, started + 10 * (k + 1)) for k in range(3)]
    _plant(store, "r", spec, points)
    _running_job(store, spec, "r", monkeypatch, done=3, total=3, stage=Stage.COHERENCE,
                 points_started=started, done_at_start=0)  # fmt: skip
    text = _jobs_page(store, monkeypatch)
    assert "~0 s left" not in text and "past its estimate" not in text  # was: "~0 s left"
    # 60 answers at ~1.5 s (the constant scaled by 0.1 s a token against 1/115 s)
    assert _seconds_left(text) > 30 and "elapsed" in text


def test_cheap_points_near_the_model_do_not_set_the_pace_of_the_far_ones(
    store, tiny_spec, monkeypatch
):
    spec = tiny_spec(generation={"max_new_tokens": 64}, runtime={"coherence": False})
    now = time.time()
    started = now - 15
    # 3 points near the model stop early: 3 prompts x 16 of 64 tokens, 0.1 s a token
    points = [(3, 48, 4.8, started + 4.8 * (k + 1)) for k in range(3)]
    _plant(store, "r", spec, points)
    _running_job(store, spec, "r", monkeypatch, done=3, total=15, stage=Stage.POINTS,
                 points_started=started, done_at_start=0)  # fmt: skip
    seconds = _seconds_left(_jobs_page(store, monkeypatch))
    full_point = 3 * 64 * 0.1  # a far point answers at full length: 19.2 s
    # 12 points to go; the one under way may be partly done (was: 12 x 5 s = ~1 min)
    assert seconds >= 11 * full_point - 6


def test_one_odd_point_moves_the_pace_a_quarter_of_the_way_once_history_exists():
    prior = pace.Throughput(n_points=40, seconds=40.0, slots=400, tokens=400)  # 0.1 s a slot
    odd = pace.Throughput(n_points=1, seconds=10.0, slots=10, tokens=10)  # 1 s a token
    blended = pace.blended_per_slot(odd, prior)
    assert blended == pytest.approx(0.25 * 1.0 + 0.75 * 0.1)  # was: the odd point alone


def test_the_history_counts_this_model_on_this_device_only_once_per_point(store, tiny_spec):
    spec = tiny_spec()
    _plant(store, "a", spec, [(3, 10, 9.0, 100.0), (3, 10, 3.0, 300.0)])
    with store.transaction() as conn:  # run "b" shares run "a"'s first point (the origin)
        conn.execute(
            "INSERT INTO runs (run_id, label, spec_json, provenance_json, n_points, created) "
            "SELECT 'b', '', spec_json, provenance_json, 1, 0 FROM runs WHERE run_id = 'a'"
        )
        conn.execute(
            "INSERT INTO run_points (run_id, idx, point_key, i, j, alpha, beta) "
            "VALUES ('b', 0, 'a-0', 0, 0, 0.0, 0.0)"
        )
    both = store.throughput.history("fp", "cpu")
    assert (both.n_points, both.seconds, both.slots) == (2, 12.0, 36)
    assert store.throughput.history("fp", "cpu", before=200.0).n_points == 1
    assert store.throughput.history("fp", "cuda") is None


def test_the_coherence_stage_is_measured_from_finished_jobs(store, tiny_spec):
    spec = tiny_spec()  # 3 points x 3 prompts x 6 tokens, coherence on
    fp = _fingerprint(store, spec)
    _plant(store, "done", spec, [(3, 18, 9.0, 100.0 + k) for k in range(3)], fp=fp)
    job = store.jobs.submit(spec.to_dict(), "t", "done")
    # its points ran from 90 s to 102 s, then 18 s of coherence over 3 x 3 answers
    store.jobs.update(job, status="done", total=3, points_started=90.0, finished=120.0)
    assert store.throughput.history(fp, "cpu").coherence_s == pytest.approx(2.0)
    check = preflight.preflight(spec, store.root, cuda=False, measured=store.measured_pace(spec))
    assert check.seconds == pytest.approx(preflight.LOAD_S + 54 * 0.5 + 9 * 2.0)
