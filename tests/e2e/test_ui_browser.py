"""`sweep ui`: stops cleanly on Ctrl-C, and shows the sweep in a real (headless) browser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import services
from smoke_store import smoke_store  # noqa: F401  (fixture)

SWEEP = str(Path(sys.executable).with_name("sweep"))
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
]


def _descendants(pid: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_ui(store, tmp_path: Path):
    port = services.free_port()
    log = open(tmp_path / "ui.log", "w")  # noqa: SIM115  (closed by the caller)
    proc = subprocess.Popen(
        [SWEEP, "ui", "--port", str(port), "--tracking-uri", store.uri, "-e", store.experiment],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    shown = f"at {url} (Ctrl-C to stop)"
    deadline = time.monotonic() + 180
    while shown not in (tmp_path / "ui.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            services.stop_process(proc)
            pytest.fail(f"sweep ui printed no URL:\n{services.log_tail(tmp_path / 'ui.log')}")
        time.sleep(0.1)
    # the URL is printed only once the server answers (it came 28-45 s early before)
    with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
        assert r.status == 200
    return proc, url, log


@pytest.mark.slow
def test_ui_binds_localhost_and_stops_on_ctrl_c(smoke_store, tmp_path):  # noqa: F811
    proc, url, log = _start_ui(smoke_store, tmp_path)
    try:
        children = _descendants(proc.pid)
        assert children, "the mlflow server runs as a child process"
        servers = [_cmdline(p) for p in children if "uvicorn" in _cmdline(p)]
        assert len(servers) == 1 and "--workers 1" in servers[0], servers  # one worker, not 4
        proc.send_signal(signal.SIGINT)  # Ctrl-C, to the `sweep ui` process only
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            services.stop_process(proc)
        log.close()
    output = (tmp_path / "ui.log").read_text()
    assert f"at {url} (Ctrl-C to stop)" in output and "MLflow UI stopped" in output
    assert "StarletteDeprecationWarning" not in output and "Invalid -W option" not in output
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in children if _alive(p)], "mlflow child processes left running"
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:  # nothing listens any more (TIME_WAIT may still hold the port)
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_mlflow_ui_shows_the_sweep_in_chromium(smoke_store, tmp_path, chromium_paths):  # noqa: F811
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from orchestrator.tracking import Tracker

    tracker = Tracker(smoke_store.uri, smoke_store.experiment, create=False)
    children = tracker.children(smoke_store.sweep_id)
    child = next(r for r in children if r.name.startswith("dropout="))
    exp = smoke_store.experiment_id

    chromium, driver_path = chromium_paths
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    proc, url, log = _start_ui(smoke_store, tmp_path)
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
        wait = WebDriverWait(driver, 40)

        def body() -> str:
            return driver.find_element(By.TAG_NAME, "body").text

        # The address `sweep ui` prints for the experiment opens its runs table, not the
        # empty GenAI "Overview" of traces (MLflow 3's default view for any experiment:
        # the `mlflow.experimentKind` tag is not what it reads; the address's workflowType is).
        page = next(
            ln.split("its runs table: ", 1)[1].strip()
            for ln in (tmp_path / "ui.log").read_text().splitlines()
            if "its runs table: " in ln
        )
        assert page == f"{url}/#/experiments/{exp}/runs?workflowType=machine_learning"
        driver.get(page)
        wait.until(
            EC.presence_of_element_located(
                (By.CSS_SELECTOR, f'a[href*="/runs/{smoke_store.sweep_id}"]')
            )
        )
        wait.until(lambda d: "baseline" in body() and "Model training" in body())
        assert "/overview" not in driver.current_url and "genai" not in driver.current_url
        driver.save_screenshot(str(tmp_path / "experiment.png"))
        # The experiment's runs: the baseline and the ablation parent, top level.
        driver.get(f"{url}/#/experiments/{exp}/runs")
        parent_link = wait.until(
            EC.presence_of_element_located(
                (By.CSS_SELECTOR, f'a[href$="/runs/{smoke_store.sweep_id}"]')
            )
        )
        wait.until(lambda d: "baseline" in body() and "ablate:dropout" in body())
        assert parent_link.text == "ablate:dropout"
        # Nested runs are collapsed: expand the parent's row with its [+] button.
        row = parent_link.find_element(By.XPATH, "./ancestor::div[contains(@class,'ag-cell')][1]")
        row.find_element(
            By.CSS_SELECTOR, 'button[data-component-id*="runnamecellrenderer"]'
        ).click()
        for r in children:
            link = wait.until(
                EC.visibility_of_element_located((By.CSS_SELECTOR, f'a[href$="/runs/{r.run_id}"]'))
            )
            assert link.text == r.name and r.name.startswith("dropout=")
        driver.save_screenshot(str(tmp_path / "runs.png"))

        # One child run: its params and its val_loss metric.
        driver.get(f"{url}/#/experiments/{exp}/runs/{child.run_id}")
        wait.until(
            lambda d: child.name in body() and "val_loss" in body() and "Parameters" in body()
        )
        text = body()
        assert "\ndropout\n" + child.params["dropout"] in text
        assert "\nval_loss\n" in text and "best_val_loss" in text
        driver.save_screenshot(str(tmp_path / "run.png"))

        # Its artifacts: samples/ and checkpoints/best.pt.
        driver.get(f"{url}/#/experiments/{exp}/runs/{child.run_id}/artifacts")
        node = '[data-testid="artifact-tree-node"][artifact-name="{}"]'
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, node.format("samples"))))
        wait.until(
            EC.element_to_be_clickable((By.CSS_SELECTOR, node.format("checkpoints")))
        ).click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, node.format("best.pt"))))
        driver.save_screenshot(str(tmp_path / "artifacts.png"))
        assert (tmp_path / "artifacts.png").stat().st_size > 10_000
        if os.environ.get("SWEEP_KEEP_SCREENSHOTS"):
            for name in ("experiment.png", "runs.png", "run.png", "artifacts.png"):
                Path(os.environ["SWEEP_KEEP_SCREENSHOTS"], name).write_bytes(
                    (tmp_path / name).read_bytes()
                )
    finally:
        if driver is not None:
            driver.quit()
        services.stop_process(proc)
        log.close()
