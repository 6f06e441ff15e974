"""The app in a real Chromium: launch from the form, watch the job, drill in, compare.

Needs Debian's chromium (`.ci/run` installs it); skipped where it is missing.
Screenshots go to $SCREENSHOT_DIR (default: the test's tmp dir).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import wait_until
from playwright.sync_api import expect, sync_playwright

from landscape_core import cli, sweep
from landscape_core.defence import defend
from landscape_core.finetune import FinetuneSpec, finetune
from landscape_core.plan.identity import plan
from landscape_core.recipes.trajectory import plane_spec, trajectory
from landscape_core.risk import preflight as risk
from landscape_core.risk.spec import DEFAULTS
from landscape_core.spec.config import AxisSpec, GenerationSpec, ModelSpec, PromptSetSpec
from landscape_core.spec.first_run import FIRST_RUN_FILE, first_run
from landscape_core.spec.training_data import TrainingDataSpec
from landscape_core.store.jobs import pid_alive
from landscape_core.store.runs import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
# Waits are on what the page shows, never on time; these only bound them, generously, so a
# loaded machine is slow but not failing: a page's rerun, and a sweep that computes.
PAGE_MS = 120_000
COMPUTE_MS = 600_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`make run`'s server on a free port and a temporary store; its log on failure."""
    port, store_dir, log = _free_port(), tmp_path / "store", tmp_path / "server.log"
    env = {**os.environ, "LANDSCAPE_STORE": str(store_dir)}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false"]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)
    yield url, Store.open(store_dir)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    worker = Store.open(store_dir).jobs.live_worker()
    if worker is not None and pid_alive(worker):
        os.kill(worker, signal.SIGTERM)
    print(log.read_text()[-3000:])


@pytest.fixture
def page():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(PAGE_MS)
        expect.set_options(timeout=PAGE_MS)  # assertions wait as long as actions do (a busy CI)
        yield page
        browser.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _select(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _fill(page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")


def _all_jobs_done(page, n: int) -> None:
    """The Jobs page (it refreshes itself) shows ``n`` jobs, each with status `done`."""
    done = page.locator("[data-testid='stMarkdownContainer'] code", has_text=re.compile("^done$"))
    expect(done).to_have_count(n, timeout=COMPUTE_MS)


def _click_through_start(page, url: str, link: str, path: str) -> None:
    """The root opens Start; every page is one click away, in the router's sidebar.

    The root's run switches to /start: a click before that rerun ends can be overtaken
    by it (CI, on a cold first server), so the click waits for Start to be drawn and idle.
    """
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/start$"), timeout=PAGE_MS)
    page.get_by_text("Your first run").wait_for()
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=PAGE_MS)  # idle
    page.get_by_role("link", name=link, exact=True).first.click()
    expect(page).to_have_url(re.compile(f"/{path}$"), timeout=PAGE_MS)


def _open_launch(page, url: str) -> None:
    _click_through_start(page, url, "Launch", "launch")


def _fill_launch(page, model_dir: Path, preset: str, grid: dict[str, str]) -> None:
    """The Launch form for the tiny model: 3 prompts, 4 tokens, default + ``preset``."""
    page.get_by_text("Launch a sweep").wait_for()
    _select(page, "Model source", "Local directory (safetensors)")
    _fill(page, "Path or id", str(model_dir))
    page.get_by_label("Presets (several queue one run each, to compare them)").click()
    page.get_by_role("option", name=preset, exact=True).click()
    page.keyboard.press("Escape")
    for label, value in {"How many prompts": "3", **grid}.items():
        _fill(page, label, value)
    _fill(page, "max_new_tokens (the paper: 512)", "4")
    page.get_by_text("Estimate:").wait_for()


def test_launch_watch_drill_down_and_compare(server, page, tiny_model_dir, tmp_path):
    url, store = server
    shots = _shots(tmp_path)
    _open_launch(page, url)
    _fill_launch(page, tiny_model_dir, "aoa", {"alpha from": "-0.5", "alpha to": "0.5",
                                                "alpha points": "5"})  # fmt: skip
    page.screenshot(path=shots / "launch.png", full_page=True)
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("Queued job(s)").wait_for()

    page.get_by_role("link", name="Jobs").first.click()
    _all_jobs_done(page, 2)
    assert set(store.jobs.frame().status) == {"done"}
    page.get_by_text("5/5 points").first.wait_for()
    page.screenshot(path=shots / "jobs.png", full_page=True)

    page.get_by_role("link", name="Landscape").first.click()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_text("VISAGE").first.wait_for()
    points = page.locator(".js-plotly-plot .scatterlayer .point")
    box = points.nth(4).bounding_box()  # the point at alpha = +0.5
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    # During the rerun the old selectbox may linger beside the new one: wait for the value.
    page.locator('input[aria-label^="Point (or click"][value^="alpha=+0.500 "]').wait_for()
    page.locator("[data-testid='stDataFrame']:visible").first.wait_for()  # not in Run details
    page.screenshot(path=shots / "landscape.png", full_page=True)

    page.get_by_role("link", name="Compare").first.click()
    page.get_by_text("VISAGE (rows: models, columns: system prompts)").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=shots / "compare.png", full_page=True)
    assert len(store.runs_frame()) == 2


def test_view_at_once_then_label_an_answer_and_compare_answers(
    server, page, tiny_model_dir, tmp_path, capsys
):
    """Issue 15's day: View lands on the new run, a key labels an answer, judge-eval
    reads the label, and Compare shows one prompt from two runs side by side."""
    url, store = server
    shots = _shots(tmp_path)
    _open_launch(page, url)
    _fill_launch(page, tiny_model_dir, "empty", {"alpha points": "3"})
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("Queued job(s)").wait_for()
    first = store.jobs.frame().iloc[-1]  # the first queued: default

    page.get_by_role("link", name="Jobs").first.click()
    page.locator(f".st-key-view-{first.job_id} button").click()  # at once, whatever its stage
    page.get_by_text("Landscape", exact=True).last.wait_for()
    # pending (the message names the run) or stored (the picker holds it), never another
    named = page.locator("[data-testid='stMain']").get_by_text(first.run_id)
    picked = page.locator('input[aria-label="Run"][value*="system=default"]')
    expect(named.or_(picked).first).to_be_visible(timeout=PAGE_MS)
    page.screenshot(path=shots / "view-at-once.png", full_page=True)
    # both jobs done, as the store says (the page stays where View put it)
    wait_until(lambda: set(store.jobs.frame().status) == {"done"}, timeout=COMPUTE_MS / 1000)

    page.get_by_role("link", name="Answers").first.click()
    _fill(page, "Your name (labeller)", "ana")
    page.get_by_text("One point's answers", exact=True).click()
    page.get_by_text("Answer 1 of 3").wait_for()
    # the label buttons come on once the page has rerun with the labeller's name
    expect(page.locator(".st-key-label-complied button")).to_be_enabled(timeout=PAGE_MS)
    page.get_by_role("heading", name="Answers").click()  # focus off the name field
    page.keyboard.press("2")  # complied, by its shortcut
    page.get_by_text("Saved: complied (answer 1)").wait_for()
    page.screenshot(path=shots / "answers.png", full_page=True)
    labels = store.answer_labels.frame(labeller="ana")
    assert labels.label.tolist() == ["complied"]
    assert cli.main(["judge-eval", "--from-store", "--store", str(store.root)]) == 0
    assert "rows: 1" in capsys.readouterr().out

    runs = "&".join(f"run={r}" for r in store.jobs.frame().run_id)  # both, by their link
    page.goto(f"{url}/compare?{runs}")
    page.get_by_text("One prompt, side by side").wait_for()
    page.locator("[data-testid='stCode']").nth(1).wait_for()  # one answer per run
    page.screenshot(path=shots / "side-by-side.png", full_page=True)


def test_defence_report_and_a_jailbreak_landscape_over_the_plain_one(
    server, page, tiny_spec, tmp_path
):
    """Issue 16 in the app: the Defence page shows a stored report, and Compare overlays
    a jailbreak's landscape on the plain one."""
    url, store = server
    shots = _shots(tmp_path)
    jailbreak = {"source": "jailbreak", "template": "prefix-sure", "limit": 3}
    defence = {"members": 2, "radius": 0.3, "attack_templates": ["prefix-sure", "persona-dan"],
               "suffix_steps": 1, "suffix_goals": 1, "benign_limit": 2}  # fmt: skip
    report = defend.run(tiny_spec(prompts=jailbreak, defend=defence), store)
    sweep.run(tiny_spec(label="plain AdvBench"), store)
    sweep.run(tiny_spec(label="jailbreak prefix-sure", prompts=jailbreak), store)

    _click_through_start(page, url, "Defence", "defence")  # the router's, not a bare page
    page.get_by_text("ASR, defence vs adaptive attack").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_text("Searched suffix (GCG-style").wait_for()
    main = page.locator("[data-testid='stMain']").inner_text()
    assert f"{report.adaptive_asr:.1f}%" in main, main[:1500]
    page.screenshot(path=shots / "defence.png", full_page=True)

    page.get_by_role("link", name="Compare", exact=True).click()
    page.get_by_text("Compare runs").wait_for()  # the Defence page's figures are gone
    page.locator(".js-plotly-plot .legendtext", has_text="plain AdvBench").wait_for()
    legend = page.locator(".js-plotly-plot .legendtext").evaluate_all(
        "items => items.map(item => item.textContent)"
    )
    assert any("plain AdvBench" in t for t in legend), legend
    assert any("jailbreak prefix-sure" in t for t in legend), legend
    page.screenshot(path=shots / "compare-jailbreak.png", full_page=True)


def test_a_finetunes_path_over_its_plane_and_the_risk_preflight(
    server, page, tiny_model_dir, tmp_path
):
    """Issue 17 in the app: a finetune's checkpoints drawn over its plane's landscape,
    the Finetuning risk page's report for a preflight, and its Trajectories tab."""
    url, store = server
    shots = _shots(tmp_path)
    three = PromptSetSpec(source="advbench", limit=3)
    spec = FinetuneSpec.from_dict({
        "recipe": "harmful", "shots": 4, "base": {"kind": "local", "path": str(tiny_model_dir)},
        "epochs": 2, "batch_size": 2, "checkpoints": 4,
    })  # fmt: skip
    adapter = finetune(spec, store.models_dir)
    points = trajectory(adapter, store, prompts=three)
    plane = dataclasses.replace(
        plane_spec(adapter, prompts=three), generation=GenerationSpec(max_new_tokens=4),
        grid=(AxisSpec(-0.25, 1.25, 4), AxisSpec(-0.5, 0.5, 3)),
    )  # fmt: skip
    plane_run = sweep.run(plane, store).run_id
    settings = dataclasses.replace(
        DEFAULTS, model=ModelSpec(kind="local", path=str(tiny_model_dir)), prompts=three,
        directions=2,
    )  # fmt: skip
    report = risk.run(TrainingDataSpec(recipe="harmful", shots=4), store, settings)

    page.goto(f"{url}/landscape?run={plane_run}")
    page.get_by_text("Data directory:").wait_for()
    page.locator(".js-plotly-plot .legendtext", has_text=f"finetune {adapter.name}").wait_for()
    page.get_by_text(f"Finetune {adapter.name}: each checkpoint projected").wait_for()
    page.screenshot(path=shots / "trajectory.png", full_page=True)
    markers = page.locator(".js-plotly-plot .scatterlayer .trace").last.locator(".point")
    assert markers.count() == len(points), "one marker per checkpoint"

    page.goto(f"{url}/risk")
    page.get_by_text("Before training: take the first steps").wait_for()
    # the validation's figure (docs/risk-validation.csv), each measure against the outcome
    page.locator(".js-plotly-plot:visible").first.wait_for()
    page.get_by_role("tab", name="Edge baseline (old measure)").click()  # the stored report
    _fill(page, "Shots (K)", "4")
    _fill(page, "Model", str(tiny_model_dir))
    page.get_by_text("Random band and judge").click()
    _fill(page, "Random directions", "2")
    _fill(page, "Held-out AdvBench prompts", "3")
    page.get_by_text(report.verdict.text[:40]).wait_for()
    page.locator(".js-plotly-plot:visible").first.wait_for()  # the edge tab's curves
    page.screenshot(path=shots / "risk.png", full_page=True)
    page.get_by_role("tab", name="Trajectories").click()
    page.get_by_text(f"finetune {adapter.name}").wait_for()
    page.get_by_role("link", name=plane_run).wait_for()  # the plane's landscape


def test_the_first_run_from_start_to_a_labelled_csv(server, page, tiny_spec, tmp_path):
    """Issue 32's default flow: Start's one button, Jobs, View, a point, a label, the CSV.

    The data directory's first-run.yaml makes the first run the tiny model's.
    """
    url, store = server
    shots = _shots(tmp_path)
    first = tiny_spec(label="first", grid=[{"start": -0.5, "stop": 0.5, "num": 3}],
                      generation={"max_new_tokens": 4})  # fmt: skip
    (store.root / FIRST_RUN_FILE).write_text(yaml.safe_dump(first.to_dict()))
    page.goto(url)
    page.get_by_role("heading", name="Safety Landscape Explorer").wait_for()
    page.get_by_text("Basis of the estimate: first guess: no run of this model here").wait_for()
    expect(page.get_by_text("3 points x 3 prompts").first).to_be_visible()
    page.screenshot(path=shots / "start.png", full_page=True)
    page.get_by_role("button", name="Start this run").click()
    expect(page).to_have_url(re.compile(r"/landscape\?run=[0-9a-f]+"))  # its view, by its id
    (job,) = store.jobs.frame().itertuples()
    assert page.url.endswith(f"run={job.run_id}")
    assert job.run_id == plan(first_run(store.root), store.file_digest).run_id

    page.get_by_role("link", name="Jobs").first.click()
    _all_jobs_done(page, 1)
    page.get_by_text("3/3 points").first.wait_for()
    page.locator(f".st-key-view-{job.job_id} button").click()
    expect(page).to_have_url(re.compile(f"/landscape\\?run={job.run_id}"))
    points = page.locator(".js-plotly-plot .scatterlayer .point")
    expect(points).to_have_count(3)
    box = points.nth(2).bounding_box()  # the point at alpha = +0.5
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator('input[aria-label^="Point (or click"][value^="alpha=+0.500 "]').wait_for()
    expect(page).to_have_url(re.compile(f"run={job.run_id}.*point="))
    page.screenshot(path=shots / "first-run-point.png", full_page=True)

    page.get_by_role("link", name="Answers").first.click()
    _fill(page, "Your name (labeller)", "ana")
    page.get_by_text("One point's answers", exact=True).click()
    page.get_by_text("Answer 1 of 3").wait_for()
    expect(page.locator(".st-key-label-complied button")).to_be_enabled(timeout=PAGE_MS)
    page.locator(".st-key-label-complied button").click()
    page.get_by_text("Saved: complied (answer 1)").wait_for()

    page.get_by_role("link", name="Generations").first.click()
    page.get_by_role("tab", name="Export").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    with open(download.value.path(), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {"state", "human_label"} <= set(rows[0])
    assert {r["run_id"] for r in rows} == {job.run_id} and len(rows) == 9  # 3 points x 3
    assert [r["human_label"] for r in rows if r["human_label"]] == ["complied"]
    assert all(r["state"] for r in rows)  # every answer judged, with its coherence


@pytest.mark.xfail(
    strict=True,
    reason="Streamlit runs a server's first page run in its old pages/-folder mode (until "
    "st.navigation is first called), where /launch names no page; the fix is renaming pages/",
)
def test_a_servers_first_visit_to_launch_shows_no_page_not_found(server, page):
    url, _ = server
    page.goto(f"{url}/launch")  # the first page run of this server
    page.get_by_text("Launch a sweep").wait_for()
    # the page is drawn: a notice still there after 5 s stays (the xfail would wait PAGE_MS)
    expect(page.get_by_text("Page not found")).to_have_count(0, timeout=5_000)
