"""The notebook API (issue 32): runs, points and answers as DataFrames, no SQL."""

from __future__ import annotations

import pytest

from landscape_core import api, sweep
from landscape_core.errors import UserError
from landscape_core.readers.results import run_visage
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model_dir):
    store = Store.open(tmp_path_factory.mktemp("api-store"))
    spec = SweepSpec.from_dict({
        "label": "api", "model": {"kind": "local", "path": str(tiny_model_dir)},
        "prompts": {"source": "advbench", "limit": 2}, "grid": [{"num": 3}],
        "generation": {"max_new_tokens": 3},
    })  # fmt: skip
    return store, sweep.run(spec, store).run_id


def test_runs_lists_each_run_with_its_counts_judges_and_visage(swept):
    store, run_id = swept
    runs = api.runs(store.root)  # a path, as a notebook gives it
    assert runs.run_id.tolist() == [run_id]
    row = runs.iloc[0]
    assert (row.label, row.measure, row.n_points, row.finished, row.failed) == (
        "api", "answers", 3, 3, 0
    )  # fmt: skip
    assert row.judges == ["keyword"]
    assert row.visage == pytest.approx(run_visage(store.points_frame(run_id)))


def test_points_and_answers_name_their_run_and_match_the_store(swept):
    store, run_id = swept
    points = api.points(run_id[:6], store)  # a prefix, as on the CLI
    assert len(points) == 3 and (points.run_id == run_id).all()
    assert points.asr.tolist() == store.points_frame(run_id).asr.tolist()
    assert {"refused", "complied", "incoherent", "coherent_asr"} <= set(points.columns)
    answers = api.answers("latest", store)
    assert len(answers) == 3 * 2 and (answers.judge == "keyword").all()
    assert set(answers.text) == set(store.generations_frame(run_id).text)


def test_a_path_with_no_store_is_refused_and_left_empty(tmp_path):
    with pytest.raises(UserError, match="no store at"):
        api.runs(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
