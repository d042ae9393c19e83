"""`sweep report` as a person sees it: headless Chromium at a 1400 px window (as the UI's
browser test does): the page does not scroll sideways (a wide table scrolls in its box),
the summary is at the top; a screenshot is kept with SWEEP_KEEP_SCREENSHOTS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from smoke_store import smoke_store  # noqa: F401  (fixture)
from typer.testing import CliRunner

from orchestrator.cli import app

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--window-size=1400,1000"]  # fmt: skip


@pytest.mark.slow
def test_the_report_fits_a_1400px_window(smoke_store, tmp_path, chromium_paths):  # noqa: F811
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["report", "--tracking-uri", smoke_store.uri, "-o", str(out)])
    assert r.exit_code == 0, r.output
    chromium, driver_path = chromium_paths
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        driver.get(out.as_uri())
        width = driver.execute_script("return window.innerWidth")
        page = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 1400 and page <= width, (page, width)  # no sideways page scroll
        boxes = driver.execute_script(
            "return [...document.querySelectorAll('.table-box')].map(b => "
            "[b.clientWidth, b.scrollWidth, getComputedStyle(b).overflowX])"
        )
        assert boxes and all(c <= width and o == "auto" for c, _, o in boxes), boxes
        tops = driver.execute_script(
            "return [...document.querySelectorAll('h2')].map(h => [h.textContent, h.offsetTop])"
        )
        assert tops[0][0] == "Summary" and tops[0][1] < 400, tops  # at the top
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
        if os.environ.get("SWEEP_KEEP_SCREENSHOTS"):
            Path(os.environ["SWEEP_KEEP_SCREENSHOTS"], "report.png").write_bytes(
                (tmp_path / "report.png").read_bytes()
            )
    finally:
        driver.quit()
