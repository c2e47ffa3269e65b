"""A real headless Chromium uses the try-it page of `ladder serve` on a tiny digits run: the form appears,
an uploaded PNG is predicted with its probabilities and explained, and nothing is fetched from another
origin (the page's CSP would log it as an error); /docs renders from the server's own files.

Chromium and chromedriver as for tests/report/test_browser.py (fails under CI=true without them, skips elsewhere).
The screenshot is written to the test's tmp_path, and its path printed and recorded (record_property).
"""

from __future__ import annotations

import base64
import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from modelladder.serve.app import ServeSettings, create_app
from modelladder.serve.predictor import Predictor
from modelladder.verbs.explain import page_explainer
from tests.hardening.server import free_port, start_server, stop_server
from tests.report.test_browser import chrome_driver

WAIT_S = 60


@pytest.fixture
def driver(tmp_path):
    browser = chrome_driver(tmp_path / "profile")
    browser.set_page_load_timeout(WAIT_S)
    browser.set_window_size(1200, 1400)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def server(digits_dir):
    """One `ladder serve` (a subprocess) for both tests: it takes seconds to start."""
    proc, url = start_server(digits_dir)
    yield url
    stop_server(proc)


def digit_png(path, index: int = 0) -> bytes:
    """Digit `index` of scikit-learn's digits (0..16) as an 8x8 greyscale PNG, as a person would upload it."""
    pixels = load_digits().images[index] * (255 / 16)
    Image.fromarray(np.round(pixels).astype(np.uint8), mode="L").save(path)
    return path.read_bytes()


def wait_for(driver, script: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def test_chromium_predicts_and_explains_an_uploaded_digit(driver, server, tmp_path, record_property):
    png = digit_png(tmp_path / "digit.png")
    expected = httpx.post(f"{server}/predict", timeout=30, json={
        "images": ["data:image/png;base64," + base64.b64encode(png).decode()]}).json()
    driver.get(f"{server}/")
    wait_for(driver, "return !document.getElementById('form').hidden")
    assert driver.title == "ModelLadder: digits"
    driver.find_element("id", "image").send_keys(str(tmp_path / "digit.png"))
    wait_for(driver, "return document.getElementById('preview').complete && !document.getElementById('preview').hidden")
    driver.find_element("id", "submit").click()
    shown = wait_for(driver, "return !document.getElementById('result').hidden && "
                             "document.getElementById('prediction').textContent")
    bars = driver.execute_script("return Array.from(document.querySelectorAll('#probabilities .bar')).map("
                                 "b => [b.querySelector('.name').textContent, b.querySelector('.value').textContent])")
    wait_for(driver, "const i = document.getElementById('explain-picture'); return !i.hidden && i.complete "
                     "&& i.naturalWidth > 0")
    method = driver.find_element("id", "explain-method").text
    screenshot = tmp_path / "try-it-page.png"
    assert driver.save_screenshot(str(screenshot))
    record_property("screenshot", str(screenshot))
    print(f"screenshot of the try-it page: {screenshot}")
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    console = driver.get_log("browser")

    assert shown == expected["predictions"][0]
    best = max(expected["probabilities"][0].items(), key=lambda kv: kv[1])
    assert bars[0] == [best[0], f"{100 * best[1]:.1f}%"] and len(bars) == 10
    assert "Integrated Gradients" in method
    assert all(r.startswith((server, "data:")) for r in resources), resources
    assert not [e for e in console if e["level"] == "SEVERE"], console
    with Image.open(screenshot) as shot:
        low, high = shot.convert("L").getextrema()
        assert high - low > 100  # something is drawn


def test_chromium_renders_the_docs_from_the_server_alone(driver, server):
    driver.get(f"{server}/docs")
    title = wait_for(driver, "const t = document.querySelector('.swagger-ui .info .title'); return t && t.textContent")
    wait_for(driver, "return document.querySelectorAll('.opblock').length >= 3")
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    console = driver.get_log("browser")
    assert title.startswith("ModelLadder: digits")
    assert resources and all(r.startswith(server) for r in resources), resources
    assert not [e for e in console if e["level"] == "SEVERE"], console


@contextmanager
def serving_in_thread(run_dir):
    """The app of `ladder serve` under uvicorn in a thread of this process: no second start of torch."""
    import uvicorn

    predictor = Predictor.load(run_dir)
    app = create_app(predictor, ServeSettings(), page_explainer(predictor))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_S)


def submit_and_read(driver) -> tuple[str, list[str], str]:
    """Press Predict; (the prediction shown, the classes of the bars in order, the explanation's method)."""
    driver.find_element("id", "submit").click()
    shown = wait_for(driver, "return !document.getElementById('result').hidden && "
                             "document.getElementById('prediction').textContent")
    names = driver.execute_script("return Array.from(document.querySelectorAll('#probabilities .name')).map("
                                  "n => n.textContent)")
    wait_for(driver, "const i = document.getElementById('explain-picture'); return !i.hidden && i.complete "
                     "&& i.naturalWidth > 0")
    return shown, names, driver.find_element("id", "explain-method").text


def test_chromium_fills_a_table_row_and_types_a_text(driver, people_dir, topics_dir, tmp_path):
    with serving_in_thread(people_dir) as url:
        driver.get(f"{url}/")
        wait_for(driver, "return !document.getElementById('form').hidden")
        labels = driver.execute_script("return Array.from(document.querySelectorAll('#fields label')).map("
                                       "l => l.textContent)")
        row = {"age": "41", "income": "72.5", "city": "oslo"}
        for i, value in enumerate(row.values()):
            driver.find_element("id", f"col-{i}").send_keys(value)
        expected = httpx.post(f"{url}/predict", json={"rows": [{"age": 41, "income": 72.5, "city": "oslo"}]}).json()
        table = submit_and_read(driver)
        driver.save_screenshot(str(tmp_path / "try-it-table.png"))
        table_console = driver.get_log("browser")
    with serving_in_thread(topics_dir) as url:
        driver.get(f"{url}/")
        wait_for(driver, "return !document.getElementById('form').hidden")
        driver.find_element("id", "text").send_keys("the team scored a goal in the match")
        text = submit_and_read(driver)
        driver.save_screenshot(str(tmp_path / "try-it-text.png"))
        text_console = driver.get_log("browser")
    print(f"screenshots of the try-it page: {tmp_path / 'try-it-table.png'}, {tmp_path / 'try-it-text.png'}")

    assert labels == ["age", "income", "city"]
    assert table[0] == expected["predictions"][0] and sorted(table[1]) == ["no", "yes"]
    assert text[0] == "sport" and sorted(text[1]) == ["politics", "sport", "tech"]
    assert "Integrated Gradients" in table[2] and "Integrated Gradients" in text[2]
    assert not [e for e in table_console + text_console if e["level"] == "SEVERE"], table_console + text_console
