import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from landscape_core.cli import main
from landscape_core.readers.export import spreadsheet_safe

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path, model_dir, **overrides):
    data = {
        "label": "cli",
        "model": {"kind": "local", "path": str(model_dir)},
        "prompts": {"source": "advbench", "limit": 3},
        "directions": [{"seed": 5}],
        "grid": [{"start": -0.4, "stop": 0.4, "num": 3}],
        "generation": {"max_new_tokens": 5},
        "runtime": {"batch_size": 3},
    }
    data.update(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_config_key_exits_2_with_the_key_named(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {kind: bundled}\nprompt: {limit: 3}\n")
    assert main(["sweep", str(path), "--store", str(tmp_path / "s")]) == 2
    assert "unknown key(s) prompt" in capsys.readouterr().err


def test_bad_model_path_exits_2_and_stores_no_run(tmp_path, capsys):
    path = _config(tmp_path, tmp_path / "missing-model")
    assert main(["sweep", str(path), "--store", str(tmp_path / "s")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["runs", "--store", str(tmp_path / "s")]) == 0
    assert "no runs yet" in capsys.readouterr().out


def test_show_json_has_the_documented_keys(tmp_path, tiny_model_dir, capsys):
    store = str(tmp_path / "s")
    assert main(["sweep", str(_config(tmp_path, tiny_model_dir)), "--store", store]) == 0
    capsys.readouterr()
    assert main(["show", "latest", "--json", "--store", store]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"run_id", "spec", "provenance", "visage", "points"} <= set(data)
    assert [p["coords"] for p in data["points"]] == [[-0.4, 0.0], [0.0, 0.0], [0.4, 0.0]]
    assert all(p["n_prompts"] == 3 and 0 <= p["asr"] <= 100 for p in data["points"])
    assert 0 <= data["visage"] <= 100


def test_export_writes_every_generation(tmp_path, tiny_model_dir, capsys):
    store = str(tmp_path / "s")
    main(["sweep", str(_config(tmp_path, tiny_model_dir)), "--store", store])
    out = tmp_path / "gens.jsonl"
    assert main(["export", "latest", "--format", "jsonl", "--out", str(out), "--store", store]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 9
    assert {"alpha", "prompt", "text", "refused", "evidence", "stop_reason"} <= set(rows[0])


def test_rescore_adds_scores_without_generating(tmp_path, tiny_model_dir, capsys):
    store = str(tmp_path / "s")
    main(["sweep", str(_config(tmp_path, tiny_model_dir)), "--store", store])
    capsys.readouterr()
    assert main(["rescore", "latest", "--judge", "keyword", "--store", store]) == 0
    assert "re-scored 9 generations" in capsys.readouterr().out


def test_sweep_killed_at_a_random_moment_resumes_without_loss_or_duplicates(
    tmp_path, tiny_model_dir
):
    n_points = 200  # enough that a kill up to 0.5 s after the first point lands mid-run
    config = _config(
        tmp_path,
        tiny_model_dir,
        grid=[{"start": -0.5, "stop": 0.5, "num": n_points}],
        generation={"max_new_tokens": 20},
    )
    store = tmp_path / "s"
    cmd = [sys.executable, "-m", "landscape_core", "sweep", str(config), "--store", str(store)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _count(store, "points") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    delay = random.uniform(0, 0.5)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survived = _count(store, "points")
    assert 1 <= survived < n_points, f"the kill after {delay:.2f}s did not land mid-run"
    assert main(["sweep", str(config), "--store", str(store)]) == 0
    assert _count(store, "points") == n_points, f"killed after {delay:.2f}s with {survived} done"
    assert _count(store, "generations") == n_points * 3
    assert _count(store, "scores") == n_points * 3


def _count(store: Path, table: str) -> int:
    db = store / "store.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_csv_export_cannot_start_a_spreadsheet_formula(tmp_path, tiny_model_dir):
    store = str(tmp_path / "s")
    main(["sweep", str(_config(tmp_path, tiny_model_dir)), "--store", store])
    hostile = ['=HYPERLINK("http://evil.invalid","click")', "+1", "-2", "@SUM(A1)", "\tx"]
    with sqlite3.connect(tmp_path / "s" / "store.sqlite") as conn:
        for i, text in enumerate(hostile):
            conn.execute("UPDATE generations SET text=? WHERE rowid=?", (text, i + 1))
    out = tmp_path / "gens.csv"
    assert main(["export", "latest", "--format", "csv", "--out", str(out), "--store", store]) == 0
    with open(out, newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    assert {"'" + h for h in hostile} <= set(texts)
    assert not any(t.startswith(("=", "+", "-", "@", "\t")) for t in texts)


def test_spreadsheet_safe_leaves_numbers_and_plain_text_alone():
    frame = pd.DataFrame({"alpha": [-0.5, 0.5], "text": ["-minus", "plain"]})
    safe = spreadsheet_safe(frame)
    assert safe.alpha.tolist() == [-0.5, 0.5]
    assert safe.text.tolist() == ["'-minus", "plain"]
