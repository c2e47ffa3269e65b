"""A real headless Chromium opens a ladder report: every plot decodes, nothing logs an error.

Chromium and chromedriver come from the Debian packages `chromium` and `chromium-driver` (`make test`
installs them). Without them the test fails under CI=true and skips elsewhere.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from modelladder.config import validate_ladder
from modelladder.report import write_report
from modelladder.report.budget import parse_budget, write_verdict
from modelladder.verbs.ladder import run_ladder
from tests.report.contract_ladder import contract_ladder
from tests.report.test_report import story_plots

RUN_PLOTS = ["logreg/confusion", "logreg/roc", "mlp/learning-curves", "mlp/confusion", "mlp/roc"]
WINDOW = (1280, 2000)
STORY = ["frontier", "steps", "calibration", "measured"]
# where the section screenshots are copied for a person to look at (MODELLADDER_REPORT_SHOTS=/tmp/report_shots)
SHOTS = os.environ.get("MODELLADDER_REPORT_SHOTS")


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser test (`make test` installs chromium)")
    pytest.skip(reason)


def chrome_driver(profile: Path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install selenium)")
    binary, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not chromedriver:
        _missing("chromium or chromedriver is missing (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


@pytest.fixture
def driver(tmp_path):
    """Checked and started before the ladder is trained: a missing browser fails or skips at once."""
    browser = chrome_driver(tmp_path / "profile")
    yield browser
    browser.quit()


@pytest.fixture
def report(tmp_path) -> Path:
    """A real two-rung ladder on digits, with one extra picture in the MLP's folder."""
    ladder = validate_ladder({
        "name": "browser",
        "data": {"dataset": "digits", "limit": 200},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                  {"name": "mlp", "model": {"name": "mlp", "hidden": [16]}}],
    })
    run_ladder(ladder, tmp_path / "runs", console=Console(file=io.StringIO()))
    folder = tmp_path / "runs" / "browser"
    (folder / "mlp" / "pictures").mkdir()
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(folder / "mlp" / "pictures" / "samples.png")
    return write_report(folder)


def test_chromium_renders_the_report_without_errors(driver, report):
    driver.set_page_load_timeout(60)
    driver.set_window_size(*WINDOW)
    driver.get(report.as_uri())
    screenshot = report.with_name("report.png")
    assert driver.save_screenshot(str(screenshot))
    images = driver.execute_script(
        "return Array.from(document.images).map(i => ({cls: i.className, plot: i.dataset.plot || null,"
        " complete: i.complete, width: i.naturalWidth}))")
    rows = driver.execute_script("return document.querySelectorAll('table.leaderboard tbody tr').length")
    headers = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.leaderboard th')).map(t => t.textContent)")
    cards = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.model-card')).map(c => ({visible: c.offsetHeight > 0,"
        " parts: Array.from(c.querySelectorAll('table.card')).map(t => t.dataset.part)}))")
    console = driver.get_log("browser")

    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(screenshot) as shot:
        assert shot.size[0] > 0 and shot.size[1] > 0
        low, high = shot.convert("L").getextrema()
        assert high - low > 100  # something is drawn, not a blank page
    assert rows == 2 and headers[:3] == ["rung", "model", "family"] and "test_accuracy" in headers
    assert [i["plot"] for i in images if i["cls"] == "plot"] == story_plots(report.parent) + RUN_PLOTS
    assert _section_shots(driver, STORY, report.parent / "shots", prefix="digits-") == STORY
    assert [i["cls"] for i in images].count("picture") == 1
    assert len(cards) == 2 and all(c["visible"] for c in cards)  # a model card for each rung
    assert cards[1]["parts"] == ["Intended use", "Training data", "Metrics (test split)", "Metrics by group",
                                 "Privacy", "Cost"]
    broken = [i for i in images if not i["complete"] or i["width"] == 0]
    assert not broken, broken
    assert not [e for e in console if e["level"] == "SEVERE"], console


def _section_shots(driver, sections: list[str], folder: Path, prefix: str) -> list[str]:
    """Screenshot each section that is on the page and visible; return their ids (copied to SHOTS if set)."""
    folder.mkdir(exist_ok=True)
    shown = []
    for section in sections:
        found = driver.find_elements("id", section)
        if not found or found[0].size["height"] == 0:
            continue
        driver.execute_script("arguments[0].scrollIntoView()", found[0])
        path = folder / f"{prefix}{section}.png"
        assert found[0].screenshot(str(path))
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(SHOTS) / path.name)
        shown.append(section)
    return shown


def test_chromium_shows_the_story_of_a_contract_ladder(driver, tmp_path):
    """Rows shaped like the contract (intervals, tests, ECE, new costs) and a budget: every section shows."""
    folder = contract_ladder(tmp_path / "contract")
    write_verdict(folder, json.loads((folder / "leaderboard.json").read_text()),
                  parse_budget("latency_ms=0.2"))
    report = write_report(folder)
    driver.set_page_load_timeout(60)
    driver.set_window_size(*WINDOW)
    driver.get(report.as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => ({plot: i.dataset.plot || null, complete: i.complete,"
        " width: i.naturalWidth, shown: i.offsetWidth}))")
    first = driver.execute_script("return document.querySelector('section').id")
    verdict = driver.execute_script("return document.querySelector('#budget .verdict').textContent")
    steps = driver.execute_script("return document.querySelectorAll('table.steps tbody tr').length")
    console = driver.get_log("browser")

    assert _section_shots(driver, ["budget", "leaderboard"] + STORY, tmp_path / "shots", prefix="contract-") == [
        "budget", "leaderboard"] + STORY
    assert first == "budget" and "Best rung within latency_ms_p50 <= 0.2 ms: mlp" in verdict
    assert steps == 3
    frontier = [i for i in images if (i["plot"] or "").startswith(("frontier/", "calibration/"))]
    assert len(frontier) == 6 and all(i["complete"] and i["width"] > 300 and i["shown"] > 300 for i in frontier)
    assert not [e for e in console if e["level"] == "SEVERE"], console
