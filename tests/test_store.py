import os
import sqlite3

import pandas as pd
import pytest

from landscape_core.errors import UserError
from landscape_core.store import database
from landscape_core.store.database import MIGRATIONS
from landscape_core.store.records import GenerationRow, GridPoint, PointResult, ScoreRow
from landscape_core.store.runs import Store

GRID = [GridPoint(0, 0, 0, -0.5, 0.0, "k0"), GridPoint(1, 1, 0, 0.5, 0.0, "k1")]


def _result(key, n=2):
    gens = [GenerationRow(i, f"p{i}", f"answer {i}", 3, "eos") for i in range(n)]
    scores = [
        ScoreRow(i, "keyword", i == 0, "matched 'Sorry'" if i == 0 else "none") for i in range(n)
    ]
    return PointResult(key, "done", "", 0.1, gens, scores)


def test_store_uses_wal(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_does_not_migrate_twice(store):
    Store.open(store.root)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_newer_schema_is_refused(store):
    with sqlite3.connect(store.path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(UserError, match="newer version"):
        Store.open(store.root)


def test_create_run_is_idempotent(store):
    assert store.create_run("r1", "x", {}, {}, GRID)
    assert not store.create_run("r1", "x", {}, {}, GRID)
    assert len(store.grid("r1")) == 2


def test_point_is_all_or_nothing(store):
    store.create_run("r1", "x", {}, {}, GRID)
    twice = [GenerationRow(0, "p", "t", 1, "eos")] * 2
    bad = PointResult("k0", "done", "", 0.1, twice, [])
    with pytest.raises(sqlite3.IntegrityError):
        store.save_point(bad)  # duplicate generation row fails the whole point
    assert [p.key for p in store.pending("r1")] == ["k0", "k1"]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 0


def test_second_save_of_a_point_is_ignored(store):
    store.create_run("r1", "x", {}, {}, GRID)
    assert store.save_point(_result("k0"))
    assert not store.save_point(_result("k0"))
    assert len(store.generations_frame("r1")) == 2


def test_points_frame_gives_asr_in_percent(store):
    store.create_run("r1", "x", {}, {}, GRID)
    store.save_point(_result("k0"))
    frame = store.points_frame("r1")
    assert frame.loc[0, "asr"] == 50.0
    assert pd.isna(frame.loc[1, "status"])


def test_unknown_run_says_how_to_list_runs(store):
    with pytest.raises(UserError, match="`runs` lists them"):
        store.run("nope")


def test_file_digest_is_memoised_until_the_file_changes(store, tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"a")
    first = store.file_digest(path)
    assert store.file_digest(path) == first
    path.write_bytes(b"bb")
    assert store.file_digest(path) != first


def _schema(path, version):
    """A store file as an earlier release left it: migrations up to ``version``."""
    with sqlite3.connect(path) as conn:
        for steps in MIGRATIONS[:version]:
            for step in steps:
                step(conn) if callable(step) else conn.execute(step)
        conn.execute(f"PRAGMA user_version={version}")


def test_a_schema_3_store_migrates_and_its_matches_are_back_filled(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    _schema(root / "store.sqlite", 3)
    old_rows = [
        ("k0", 0, "keyword", 1, 'matched "I\'m sorry"'),  # repr switches quotes here
        ("k0", 1, "keyword", 1, "matched 'Sorry'"),
        ("k0", 2, "keyword", 0, "no refusal keyword found"),
        ("k0", 3, "refusal-patterns", 1, 'apology: "i\'m sorry" in the opening'),
        ("k0", 4, "classifier:x", 1, "label refused (P(refusal) = 0.900)"),
    ]
    with sqlite3.connect(root / "store.sqlite") as conn:
        conn.execute("INSERT INTO runs VALUES ('r1', 'old run', '{}', '{}', 1, 0)")
        conn.execute("INSERT INTO run_points VALUES ('r1', 0, 'k0', 0, 0, 0.0, 0.0)")
        conn.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)", old_rows)
    store = Store.open(root)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        matched = dict(conn.execute("SELECT prompt_index, matched FROM scores"))
    assert matched == {0: "I'm sorry", 1: "Sorry", 2: None, 3: "i'm sorry", 4: None}
    assert store.runs_frame().run_id.tolist() == ["r1"]


def test_a_schema_13_store_opens_and_its_points_versions_read_unknown(tmp_path):
    """Points stored before versions were recorded read None (never a guess); new ones theirs."""
    root = tmp_path / "old"
    root.mkdir()
    _schema(root / "store.sqlite", 13)
    with sqlite3.connect(root / "store.sqlite") as conn:
        conn.execute("INSERT INTO runs VALUES ('r1', 'old run', '{}', '{}', 2, 0)")
        conn.execute("INSERT INTO run_points VALUES ('r1', 0, 'k0', 0, 0, -0.5, 0.0, 0)")
        conn.execute("INSERT INTO run_points VALUES ('r1', 1, 'k1', 1, 0, 0.5, 0.0, 0)")
        conn.execute("INSERT INTO points VALUES ('k0', 'done', '', 2, 6, 0.1, 1.0)")
    store = Store.open(root)
    assert store.point_versions(["k0", "k1"]) == {"k0": None}
    store.save_point(_result("k1"), versions={"torch": "2.5.1", "transformers": "4.46.0"})
    assert store.point_versions(["k0", "k1"])["k1"] == {"torch": "2.5.1", "transformers": "4.46.0"}
    assert sorted(store.run_versions("r1").points) == [1, 1]


def test_dropped_points_are_pending_again_with_their_rows_gone(store):
    store.create_run("r1", "x", {}, {}, GRID)
    store.save_point(_result("k0"))
    store.save_point(_result("k1"))
    store.answer_labels.save("k0", 0, "ann", "refused")
    assert store.drop_points(["k0"]) == 1
    assert [p.key for p in store.pending("r1")] == ["k0"]
    with sqlite3.connect(store.path) as conn:
        for table in ("generations", "scores", "answer_labels"):
            keys = {r[0] for r in conn.execute(f"SELECT point_key FROM {table}")}
            assert "k0" not in keys


def test_scores_keep_the_match_as_data(store):
    store.create_run("r1", "x", {}, {}, GRID)
    row = ScoreRow(0, "keyword", True, 'matched "I\'m sorry"', "I'm sorry")
    store.save_point(
        PointResult("k0", "done", generations=[GenerationRow(0, "p", "I'm sorry.", 2, "eos")],
                    scores=[row])
    )  # fmt: skip
    assert store.generations_frame("r1").matched.tolist() == ["I'm sorry"]


@pytest.mark.parametrize("name", ["%", "_", "", " ", "a", "ab%"])
def test_wildcards_empty_and_ambiguous_run_names_pick_nothing(store, name):
    for run_id in ("abc1", "abd2"):
        store.create_run(run_id, run_id, {}, {}, GRID)
    with pytest.raises(UserError, match="names 2 runs|no run|give a run id"):
        store.run(name)


def test_a_unique_prefix_or_the_exact_id_names_a_run(store):
    for run_id in ("abc1", "abd2", "abd"):
        store.create_run(run_id, run_id, {}, {}, GRID)
    assert store.run("abc")["run_id"] == "abc1"
    assert store.run("abd")["run_id"] == "abd"  # exact beats prefix
    with pytest.raises(UserError, match="abd2"):
        store.run("ab")


def test_opening_a_current_store_takes_no_write_lock(store, monkeypatch):
    """A writer holding the lock must not stop `runs` or a page from opening the store."""

    store.create_run("r1", "x", {}, {}, GRID)
    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", 0.2)  # not 30 s: the test waits on it
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a sweep mid-transaction, or a long migration
    try:
        reopened = Store.open(store.root)  # was: OperationalError "database is locked"
        assert reopened.runs_frame().run_id.tolist() == ["r1"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.parametrize("swap", ["in place", "renamed over"])
def test_a_same_size_swap_with_its_mtime_kept_is_hashed_again(store, tmp_path, swap):
    """Size and mtime alone let a rewritten model file reuse its old digest (and run)."""

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old weights")
    stat = path.stat()
    first = store.file_digest(path)
    if swap == "in place":
        path.write_bytes(b"new weights")
    else:
        (tmp_path / "new").write_bytes(b"new weights")
        os.replace(tmp_path / "new", path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or `touch -r` do
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert store.file_digest(path) != first
