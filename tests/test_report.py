"""The HTML report: self-contained, escaped, and it opens in Chromium with no network."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from landscape_core import cli, sweep
from landscape_core.plan.identity import plan
from landscape_core.readers.report import config_yaml, html_report
from landscape_core.spec.config import SweepSpec

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def reported(tiny_spec, store, tmp_path):
    spec = tiny_spec(directions=[{"seeds": [1, 2]}])
    summary = sweep.run(spec, store)
    with sqlite3.connect(store.path) as conn:  # an answer that must stay text
        conn.execute("UPDATE generations SET text=? WHERE prompt_index=0", (HOSTILE,))
    out = tmp_path / "report.html"
    assert cli.main(["export", summary.run_id, "--format", "html", "--out", str(out),
                     "--store", str(store.root)]) == 0  # fmt: skip
    return out, summary.run_id, spec


def test_the_report_is_self_contained_and_escaped(reported, store):
    out, run_id, _ = reported
    text = out.read_text()
    assert HOSTILE not in text and "&lt;script&gt;alert(&#x27;x&#x27;)" in text
    assert 'src="http' not in text and "src='http" not in text  # nothing to fetch
    assert "VISAGE" in text and "coherent VISAGE" in text and "95% CI" in text
    assert text.count("<details>") == 5  # two directions of three points share the origin


def test_the_report_config_recreates_the_run(reported, store, tmp_path):
    out, run_id, spec = reported
    config = tmp_path / "again.yaml"
    config.write_text(config_yaml(store.run(run_id)))
    assert plan(SweepSpec.from_yaml(config), store.file_digest).run_id == run_id
    assert sweep.run(SweepSpec.from_yaml(config), store).computed == 0


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_report_renders_in_chromium_offline(reported):
    out, _, _ = reported
    requests, dialogs = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(offline=True)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(out.as_uri())
        page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
        n_plots = page.locator(".plotly-graph-div").count()
        page.locator("details").first.click()
        shown = page.locator("details").first.inner_text()
        browser.close()
    assert n_plots >= 2  # the landscape and the three states
    assert [u for u in requests if not u.startswith("file://")] == []
    assert dialogs == []  # the hostile answer never ran
    assert "<script>alert('x')</script>" in shown  # it is shown as text


def test_html_report_of_an_unfinished_run(tiny_spec, store):
    spec = tiny_spec()
    p = plan(spec, store.file_digest)
    store.create_run(p.run_id, "", spec.to_dict(), {"model": {"name": "m"}}, [])
    assert "nothing yet" in html_report(store, p.run_id)
