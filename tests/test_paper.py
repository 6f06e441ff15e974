"""The paper pipeline end to end, shrunk to the tiny model."""

import re
from pathlib import Path

import plotly.graph_objects as go

from landscape_core.recipes import paper
from landscape_core.recipes.paper_risk_validation import write_figure


def test_paper_writes_every_table_from_the_store(tiny_model_dir, store, tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "ALIGNED", {"kind": "local", "path": str(tiny_model_dir)})
    monkeypatch.setattr(paper, "SHOTS", (2,))
    monkeypatch.setattr(paper, "LANDSCAPE_PROMPTS", {"source": "advbench", "limit": 2})
    monkeypatch.setattr(paper, "ASR_PROMPTS", {"source": "advbench", "limit": 3})
    monkeypatch.setattr(paper, "CHECKPOINT_PROMPTS", {"source": "advbench", "limit": 2})
    monkeypatch.setattr(paper, "RANDOM_GRID", [{"start": -0.3, "stop": 0.3, "num": 3}])
    monkeypatch.setattr(paper, "INTERPOLATION_GRID", [{"start": -0.5, "stop": 1.5, "num": 3}])
    monkeypatch.setattr(paper, "TOKENS", {"max_new_tokens": 3})
    monkeypatch.setattr(paper, "STOPPED", {"max_new_tokens": 3, "stop": "verdict"})
    monkeypatch.setattr(paper, "SEEDS", (1, 2))
    monkeypatch.setattr(paper, "TRAINING_SEEDS", (0, 1))
    monkeypatch.setattr(paper, "REPLICA_DIRECTIONS", 1)
    monkeypatch.setattr(paper, "FLUENCY_DIRECTIONS", 1)
    monkeypatch.setattr(paper, "FINE_GRID", [{"start": -0.3, "stop": 0.3, "num": 5}])
    monkeypatch.setattr(paper, "BASIN", {"tolerance": 0.15, "max_alpha": 0.3})
    small = ["novel-chapter", "prefix-sure"]
    monkeypatch.setattr(
        paper,
        "DEFENCE",
        {
            "members": 2,
            "radius": 0.3,
            "attack_templates": small,
            "suffix_steps": 1,
            "suffix_goals": 1,
            "benign_limit": 2,
        },
    )
    monkeypatch.setattr(paper, "DEFENDER_SEEDS", (5, 6))
    monkeypatch.setattr(paper, "DEFENCE_GOALS", {"source": "advbench", "start": 2, "limit": 3})
    library = paper.templates()
    monkeypatch.setattr(paper, "templates", lambda: {n: library[n] for n in small})
    computed: dict[str, float] = {}  # each section's seconds, before the table rounds them
    write = paper.write_report

    def spy(store, out, experiments, spent, *rest):  # noqa: ANN001, ANN002
        computed.update(spent)
        return write(store, out, experiments, spent, *rest)

    monkeypatch.setattr(paper, "write_report", spy)
    # from an empty store the report is written at once, every experiment pending
    empty = paper.run_paper(store, tmp_path / "empty" / "paper-mini.md", compute=False)
    partial = empty.read_text()
    assert "> **Partial.**" in partial and "aligned, seed 1;" in partial, partial[:2000]
    assert "section 6's defence" in partial and "section 7's trajectories" in partial
    assert "fluency along mix 2-shot's first directions" in partial
    assert "fluency near aligned's edges" in partial
    assert "| target | ASR at alpha = -0.50 | +0.50 | +1.50 | run |" in partial
    assert "| mix 2-shot | - | - | - | pending |" in partial
    assert store.runs_frame().empty
    stale = tmp_path / "docs" / "paper-mini" / "configs" / "0123456789abcdef.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier report's run")
    (stale.parent / "mine.yaml").write_text("not a run's config: left alone")
    out = paper.run_paper(store, tmp_path / "docs" / "paper-mini.md", progress=lambda m: None)
    text = out.read_text()
    assert not stale.exists()  # only the configs the report links stay beside it
    assert (stale.parent / "mine.yaml").exists()
    assert "**Partial.**" not in text
    for heading in ("Fig. 2(b)", "Three states", "Table 1", "Table 2", "by bisection",
                    "Fig. 1(B)", "Section 6", "perturbed-ensemble defence",
                    "The paper's findings, one verdict each", "Section 7",
                    "risk preflight"):  # fmt: skip
        assert heading in text
    # compute by section, each shared point counted once
    rows = dict(re.findall(r"^\| ([^|]+) \| ([0-9.]+) \|$", text, flags=re.M))
    assert "fluency along Table 1's landscapes" in rows, rows
    spent = ("training the finetunes", "Fig. 2(b), Tables 1 and 2, the basin search",
             "section 6: the defence, 2 member sets", "section 7: trajectories")  # fmt: skip
    for section in spent:  # seconds: the tiny model's sections can print as 0.00 minutes
        assert section in rows and computed[section] > 0, (section, computed)
    assert "VISAGE [95% CI]" in text and "t-interval over directions" in text
    assert "n directions" in text and "paired" in text
    assert "no difference" not in text and "stays in the basin" not in text
    # one row per finding; 2 directions give no interval, so nothing is claimed either way
    where = ("| Table 1 | ", "| Table 2 | ", "| Section 6 | ", "| Basin or breakage | ")
    claims = [line for line in text.splitlines() if line.startswith(where)]
    # harmful; mix x2; presets; defence; each model; the aligned demo near its edges
    assert len(claims) == 1 + 2 + 3 + 3 + 3 + 1
    assert all("**not shown**" in c or "**pending**" in c for c in claims), claims
    defence = [c for c in claims if c.startswith("| Section 6 |")]  # says why: 2 member sets
    assert all("no interval: 2 member sets (x " in c and "fewer than the 5" in c for c in defence)
    assert any(c.startswith("| Basin or breakage |") and "mix 2-shot" in c for c in claims)
    assert "aligned, near its edges on a 0.15 grid" in text
    # each stored row's edges are known to its own grid's step: 0.3 dense, 0.15 near the edges
    assert "one grid step (0.3 or 0.15 alpha, as each row's grid has it)" in text
    # issue 31: refusal-v2's VISAGE beside the keyword's, from the same stored answers
    assert text.count("| refusal-v2 VISAGE [95% CI] |") == 2
    t1 = next(line for line in text.splitlines() if line.startswith("| harmful 2-shot |"))
    assert t1.split("|")[5].strip() not in ("", "-"), t1  # rescored: its VISAGE is read
    assert "| harmful 2-shot |" in text and "| mix 2-shot |" in text
    # each finetune over its training seeds (0 and 1 here), both read: no "-" left
    table = text.split("### Table 1 over training seeds")[1].split("|\n\n")[0]
    seeds = [line for line in table.splitlines()
             if line.startswith(("| harmful 2-shot |", "| mix 2-shot |"))]  # fmt: skip
    assert len(seeds) == 2 and all(" - " not in line for line in seeds), seeds
    assert all(f"| {p} |" in text for p in paper.PRESETS)
    assert "| novel-chapter | fiction |" in text and "| adaptive, defence |" in text
    draws = text.split("| member seed |")[1].split("\n\n")[0].splitlines()[2:]
    assert [row.split(" | ")[0] for row in draws] == ["| 5", "| 6"], draws  # each draw, a row
    attack = text.split("The attack is ")[1].split(",")[0]
    stored = [paper._stored_defence(paper.defence_spec(attack, s), store) for s in (5, 6)]
    assert [row.split(" | ")[2] for row in draws] == [f"{r['defended_asr']:.1f}" for r in stored]
    assert "XSTest held-out safe prompts refused" in text and "Suffix search" in text
    assert "**harmful 2-shot** (left the basin" in text and "**mix 2-shot**" in text
    # section 7's preflight is its validation on real finetunes (docs/risk-validation.csv)
    assert "validated on real finetunes" in text and "The pre-registered test" in text
    assert "- pairs:" not in text  # the basin-edge preflight is no longer run
    assert (tmp_path / "docs" / "paper-mini" / "trajectories.html").is_file()
    configs = list((tmp_path / "docs" / "paper-mini" / "configs").glob("*.yaml"))
    assert configs and (tmp_path / "docs" / "paper-mini" / "fig1b.html").is_file()
    started = len(store.runs_frame())
    paper.run_paper(store, out, progress=lambda m: None)  # everything is stored: no new run
    assert len(store.runs_frame()) == started
    # `paper --report-only` writes the same report and the same figures from the store alone
    again = paper.run_paper(store, tmp_path / "again" / "paper-mini.md", compute=False)
    assert len(store.runs_frame()) == started
    assert again.read_text() == text
    assert _figures(out.parent / "paper-mini") == _figures(again.parent / "paper-mini")


def _figures(folder: Path) -> dict[str, str]:
    """Each figure's HTML with Plotly's random div ids blanked: the data and layout."""
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    return {f.name: uuid.sub("ID", f.read_text()) for f in sorted(folder.glob("*.html"))}


def test_the_risk_section_is_rewritten_from_its_csv_alone(tmp_path, capsys):
    from landscape_core.cli import main
    from landscape_core.recipes.paper_risk_validation import RISK_HEADING

    report = tmp_path / "paper-mini.md"
    before = "# The paper in miniature\n\nsections 1-6, from a store not at hand\n\n"
    after = "\n\n## The paper's findings\n\nkept as it was\n"
    report.write_text(f"{before}{RISK_HEADING}\n\nlast round's rows\n{after}")
    assert main(["paper", "--out", str(report), "--risk-only"]) == 0
    assert "its risk validation section" in capsys.readouterr().out
    text = report.read_text()
    assert text.startswith(before + RISK_HEADING) and text.endswith(after)
    assert "last round's rows" not in text
    assert "**The pre-registered test, on the held-out half**" in text  # the committed CSV
    assert (tmp_path / "paper-mini" / "risk_validation.html").is_file()
    once = text
    assert main(["paper", "--out", str(report), "--risk-only"]) == 0
    assert report.read_text() == once, "a second refresh changes nothing"
    report.write_text("# a report of another layout\n")
    assert main(["paper", "--out", str(report), "--risk-only"]) == 2
    assert "--report-only" in capsys.readouterr().err
    assert main(["paper", "--out", str(tmp_path / "missing.md"), "--risk-only"]) == 2
    assert report.read_text() == "# a report of another layout\n", "nothing was written"


def test_a_bisection_edge_agrees_with_the_grid_within_a_step_or_past_its_end():
    from landscape_core.recipes.paper_render import edges_agree

    assert edges_agree(-0.175, -0.2, 0.05, 0.2) and edges_agree(0.2, 0.15, 0.05, 0.2)
    assert not edges_agree(0.05, 0.15, 0.05, 0.2), "two steps apart"
    assert edges_agree(-0.275, None, 0.05, 0.2), "past the grid's end: the grid cannot see it"
    assert edges_agree(None, None, 0.05, 0.2) and not edges_agree(None, 0.15, 0.05, 0.2)
    assert not edges_agree(0.1, None, 0.05, 0.2), "inside the grid, which saw no edge there"


def test_a_figure_written_twice_is_the_same_file(tmp_path):
    """An unchanged report rewritten leaves its figures byte for byte (no random div id)."""
    figure = go.Figure(go.Scatter(x=[0.0, 1.0], y=[1.0, 2.0]))
    write_figure(tmp_path, "fig", figure)
    first = (tmp_path / "fig.html").read_bytes()
    write_figure(tmp_path, "fig", figure)
    assert (tmp_path / "fig.html").read_bytes() == first
