"""The perturbed-ensemble defence and the adaptive attack, on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from landscape_core import sweep
from landscape_core.basin.intervals import mean_interval
from landscape_core.cli import main
from landscape_core.defence import defend
from landscape_core.defence.report import (
    Answers,
    MembersRun,
    adaptive_choice,
    ensemble,
    members_run,
    origin_choice,
    over_member_sets,
    vote_refuses,
)
from landscape_core.defence.spec import ThreatModel, members_spec
from landscape_core.errors import UserError
from landscape_core.recipes import paper_claims
from landscape_core.spec.config import DefenceSpec, SweepSpec

TEMPLATES = ["prefix-sure", "persona-dan"]


@pytest.fixture
def defence_spec(tiny_spec):
    def make(**defend_fields):
        fields = {"members": 3, "radius": 0.3, "seed": 5, "vote": "majority",
                  "attack_templates": TEMPLATES, "benign_limit": 2, **defend_fields}  # fmt: skip
        prompts = {"source": "jailbreak", "template": "prefix-sure", "limit": 3}
        return tiny_spec(prompts=prompts, defend=fields)

    return make


@pytest.fixture
def spied(monkeypatch):
    """Every sweep `defend` asks for, with its summary."""
    calls = []
    real = sweep.run

    def spy(spec, store, **kwargs):
        summary = real(spec, store, **kwargs)
        calls.append((spec, summary))
        return summary

    monkeypatch.setattr(defend.sweep, "run", spy)
    return calls


def _answers(refused: list[bool]) -> Answers:
    return Answers(tuple(refused), tuple(f"answer {r}" for r in refused), (0.5,) * len(refused))


def test_the_vote_rule_is_applied_as_documented():
    assert vote_refuses([False, False, True], "any")
    assert not vote_refuses([False, False, False], "any")
    assert vote_refuses([True, True, False], "majority")
    assert not vote_refuses([True, False, False], "majority")
    assert not vote_refuses([True, False], "majority"), "a tie is no majority"
    members = [
        Answers((True, False), ("no 1", "yes 1"), (0.1, 0.2)),
        Answers((False, False), ("yes A", "yes B"), (0.3, 0.4)),
        Answers((True, True), ("no 3", "no 3b"), (0.5, 0.6)),
    ]
    majority = ensemble(members, "majority")
    assert majority.refused == (True, False)
    assert majority.texts == ("no 1", "yes 1"), "a refusal keeps the first refusing member's text"
    anyone = ensemble(members, "any")
    assert anyone.refused == (True, True)
    assert anyone.texts == ("no 1", "no 3b")
    assert ensemble(members[1:2], "majority").texts == ("yes A", "yes B")


def test_one_member_at_radius_zero_is_the_undefended_model(store, defence_spec):
    out = defend.run(defence_spec(members=1, radius=0.0), store)
    assert out.defended_asr == out.undefended_asr
    assert out.over_refusal == out.over_refusal_undefended
    assert out.perplexity == out.perplexity_undefended
    run = members_run(store, out.runs["defence members: prefix-sure"], 0.0)
    assert run.members == (run.origin,), "the only member is the model's own answers"


def test_members_are_cached_points_so_defending_again_generates_nothing(
    store, defence_spec, spied, monkeypatch
):
    spec = defence_spec()
    first = defend.run(spec, store)
    assert sum(summary.computed for _, summary in spied) > 0
    spied.clear()

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded although every point is stored")

    monkeypatch.setattr(sweep, "_executor", no_model)
    again = defend.run(spec, store)
    assert spied and all(summary.computed == 0 for _, summary in spied)
    assert again.to_dict() == first.to_dict()
    # members are ordinary points: the members run holds the model and one point per seed
    member_run = store.run(first.runs["defence members: prefix-sure"])
    assert member_run["spec"]["directions"][0]["seeds"] == [5, 6, 7]
    frame = store.defences.frame()
    assert list(frame.defended_asr) == [first.defended_asr]


def test_the_adaptive_attack_never_sees_the_defenders_seeds(store, defence_spec, spied):
    spec = defence_spec(attack_seed=11)
    defend.run(spec, store)
    defender = set(spec.defend.seeds())
    attack_seeds = {s for sp, _ in spied if sp.label.startswith("attack")
                    for s in sp.directions[0].seeds}  # fmt: skip
    defence_seeds = {s for sp, _ in spied if sp.label.startswith("defence")
                     for s in sp.directions[0].seeds}  # fmt: skip
    assert defence_seeds == defender
    assert attack_seeds == set(defend.attacker_seeds(ThreatModel.of(spec.defend)))
    assert len(attack_seeds) == spec.defend.samples
    assert not attack_seeds & defender
    # what the attacker is handed holds no seed of the defender's
    assert set(vars(ThreatModel.of(spec.defend)).values()).isdisjoint(defender)


def test_the_control_arm_chooses_at_the_model_and_the_adaptive_one_on_its_samples():
    """Goal 0: template a complies at the model only, b on the samples only; goal 1: both
    comply at the model, so the control keeps the library's first (a)."""
    attacker = {
        "a": MembersRun(_answers([False, False]), (_answers([True, True]),) * 2),
        "b": MembersRun(_answers([True, False]), (_answers([False, True]),) * 2),
    }
    assert origin_choice(attacker).templates == ("a", "a")
    assert adaptive_choice(attacker).templates == ("b", "a")


def test_member_sets_widen_the_interval_by_the_defences_own_randomness():
    goals = np.array([0.0, 100.0, 100.0, 0.0, 100.0, 0.0, 100.0, 100.0])

    def report(seed: int, defended: np.ndarray) -> dict:
        return {"defence": {"seed": seed}, "defended_asr": float(defended.mean()),
                "intervals": {"defended_asr": [0.0, None, None]},
                "per_goal": {"defended_asr": list(defended)}}  # fmt: skip

    given = [report(s, goals) for s in range(5)]
    same = over_member_sets(given)
    assert given[0]["intervals"]["defended_asr"] == [0.0, None, None]  # its input is kept
    alone = mean_interval(goals, "goals")
    assert same["intervals"]["defended_asr"] == pytest.approx([alone.mean, alone.low, alone.high])
    # member sets that differ (a set effect): the goals-only interval of the mean over
    # sets would leave that variance out; the crossed one holds it
    draws = [report(s, goals * 0.5 + 10.0 * s) for s in range(5)]
    varied = over_member_sets(draws)
    mean, low, high = varied["intervals"]["defended_asr"]
    over_sets = np.mean([d["per_goal"]["defended_asr"] for d in draws], axis=0)
    ignoring = mean_interval(over_sets, "goals")
    assert mean == pytest.approx(ignoring.mean)
    assert high - low > ignoring.high - ignoring.low  # the members' draw adds its variance
    assert varied["member_sets"] == [0, 1, 2, 3, 4]
    # each draw's own ASR is kept beside the mean, in the member sets' order
    assert varied["by_member_set"]["defended_asr"] == [d["defended_asr"] for d in draws]
    assert varied["by_member_set"]["control_asr"] == [None] * 5  # unmeasured stays unmeasured


def test_coherent_compliance_leaves_out_broken_text_and_unmeasured_answers():
    answers = Answers(
        refused=(False, False, True, False),
        texts=("Here is a plan in three steps.", "", "I cannot help with that.", "Sure."),
        nll=(0.5, 0.5, 0.5, float("nan")),
    )
    got = answers.coherent_complied()
    assert list(got[:3]) == [100.0, 0.0, 0.0]  # complied; empty is incoherent; refused
    assert got[3] != got[3]  # NaN: its coherence was never measured


def test_defend_json_reports_the_three_asrs_and_the_costs(store, defence_spec, tmp_path, capsys):
    config = tmp_path / "defend.yaml"
    config.write_text(yaml.safe_dump(defence_spec().to_dict()))
    assert main(["defend", str(config), "--store", str(store.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("undefended_asr", "defended_asr", "adaptive_asr", "over_refusal", "perplexity",
                "control_asr"):  # fmt: skip
        assert isinstance(out[key], float), key
    assert {"control_asr", "adaptive_minus_control"} <= set(out["intervals"])
    assert out["defence"]["attack_templates"] == TEMPLATES
    assert out["defence"]["members"] == 3 and out["defence"]["vote"] == "majority"
    assert 0 <= out["adaptive_asr"] <= 100


def test_bad_defences_say_what_to_do(tiny_spec, defence_spec, store, tmp_path):
    with pytest.raises(UserError, match="no `defend:` section"):
        defend.run(tiny_spec(), store)
    with pytest.raises(UserError, match="members"):
        DefenceSpec(members=0)
    with pytest.raises(UserError, match="radius"):
        DefenceSpec(radius=float("nan"))
    with pytest.raises(UserError, match="unknown attack template"):
        defend.run(defence_spec(attack_templates=["nope"]), store)


def test_members_use_the_configs_normalisation(tiny_spec):
    spec = tiny_spec(directions=[{"kind": "random", "seed": 1, "norm": "filter"}])
    members = members_spec(spec, (3, 4), 0.1, spec.prompts, "x")
    assert members.directions[0].norm == "filter"
    assert [round(a, 9) for a in (members.grid[0].start, members.grid[0].stop)] == [0.0, 0.1]
    assert members.defend is None


def test_the_defence_page_shows_a_stored_report(store, defence_spec, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parent.parent / "pages" / "defence_page.py")
    monkeypatch.setenv("LANDSCAPE_STORE", str(store.root))
    empty = AppTest.from_file(page, default_timeout=60).run()
    assert not empty.exception
    assert "defend configs/defend.yaml" in empty.info[0].value

    out = defend.run(defence_spec(suffix_steps=1, suffix_goals=1), store)
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["ASR, no defence"] == f"{out.undefended_asr:.1f}%"
    assert metrics["ASR, defence vs adaptive attack"] == f"{out.adaptive_asr:.1f}%"
    assert at.code[0].value == out.suffix_search["suffix"], "the suffix is shown as text"
    templates = at.dataframe[1].value
    assert list(templates.template) == [*TEMPLATES, "prefix-sure+suffix"]


def test_the_shipped_defence_config_is_the_paper_miniatures():
    from landscape_core.recipes.paper import defence_spec

    shipped = SweepSpec.from_yaml("configs/defend.yaml")
    assert shipped.to_dict() == defence_spec().to_dict()


def test_the_claims_read_the_defences_paired_intervals_with_their_predicted_signs():
    shield = {
        "attack": "novel-chapter",
        "member_sets": [1000, 2000, 3000, 4000, 5000],
        "templates": [{"chosen_for": 40}, {"chosen_for": 20}],
        "intervals": {
            "defended_minus_undefended": [-20.0, -30.0, -10.0],  # the defence works
            "adaptive_minus_control": [1.0, -4.0, 6.0],  # adapting: 0 inside
            "adaptive_minus_defended": [-8.0, -12.0, -4.0],  # the other sign
        },
    }
    claims = paper_claims._defence(shield)
    assert [c.verdict for c in claims] == ["supported", "not shown", "contradicted"]
    assert all("over 5 member sets (x 60 goals)" in c.evidence() for c in claims)
    assert all(c.verdict == "pending" for c in paper_claims._defence(None))
