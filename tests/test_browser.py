"""The latent explorer in a real browser: JupyterLab and Notebook 7 run notebook 04, a slider moves the image.

Starts a Jupyter server on a free port (smoke mode, demo data, autosave off so the committed
notebook is never written), drives the system Chromium through Playwright, runs all cells,
checks that no cell failed, then drags a direction slider and waits for the rendered latent
image's pixels to change. Skipped without Chromium or Playwright.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ganlib.data import DEMO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/04_sample_inspection.ipynb"
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SERVER_START_S = 90
RUN_ALL_S = 300
IMAGE_CHANGE_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def write_settings(settings: Path) -> None:
    """User settings: no autosave (the committed notebook stays as it is), every cell in the DOM, no news."""
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@contextlib.contextmanager
def jupyter_server(app: str, tmp_path: Path):
    """A `python -m jupyterlab` or `python -m notebook` server in its own process group; stopped always."""
    port, token = free_port(), secrets.token_hex(16)
    config = tmp_path / "jupyter-config"
    write_settings(config / "lab" / "user-settings")
    env = {
        **os.environ,
        "GANLIB_SMOKE": "1",
        "GANLIB_DATA": str(DEMO_ROOT),
        "GANLIB_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(config / "lab" / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    env.pop("MPLBACKEND", None)
    cmd = [
        sys.executable, "-m", app, "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
        f"--FileCheckpoints.root_dir={tmp_path / 'checkpoints'}",  # no .ipynb_checkpoints/ in the repository
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI runners
        cmd.append("--allow-root")
    log_path = tmp_path / f"{app}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{app} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                api(base, token, "/api/status", timeout=2)
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{app} did not answer within {SERVER_START_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        # Shut the kernels down through the API (they run in their own sessions), then the server.
        with contextlib.suppress(Exception):
            for kernel in api(base, token, "/api/kernels"):
                api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=10)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def kernels_idle(base: str, token: str) -> bool:
    kernels = api(base, token, "/api/kernels")
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


def all_cells_ran(page) -> bool:
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return bool(prompts) and all(re.search(r"\[\d+\]", p) for p in prompts)


def error_outputs(page) -> list[str]:
    """Texts of stderr and error outputs that report a failure (JupyterLab renders errors as stderr)."""
    selector = ", ".join(
        f'.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.{kind}"]' for kind in ("stderr", "error")
    )
    return [t for t in page.locator(selector).all_inner_texts() if "Traceback" in t or "Error" in t]


def pixels(locator):
    from PIL import Image

    return Image.open(io.BytesIO(locator.screenshot())).convert("L").tobytes()


def run_all_and_move_a_slider(page, base: str, token: str, app: str, tmp_path: Path) -> None:
    """Run > Run All Cells, check the outputs, move the first direction slider, see the image change."""
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    wait_until(lambda: kernels_idle(base, token), 90, "the kernel to start")
    if app == "jupyterlab":  # the committed form is what the kernel writes: opening it changes nothing
        time.sleep(2)
        assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0, f"{NOTEBOOK} opened as modified"
        assert page.locator(".lm-TabBar-tab").count() > 0
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    wait_until(lambda: all_cells_ran(page) and kernels_idle(base, token), RUN_ALL_S, "Run All Cells")
    errors = error_outputs(page)
    assert not errors, f"a cell failed in {app}:\n" + "\n".join(e[-1500:] for e in errors)

    image = page.locator("img.ganlib-latent-image").first  # the second is the paired generator's explorer
    image.scroll_into_view_if_needed()
    wait_until(lambda: image.evaluate("i => i.complete && i.naturalWidth > 0"), 30, "the latent image")
    before = pixels(image)
    readout = page.locator(".ganlib-direction-0 .widget-readout").first
    start_value = readout.inner_text()
    # Drag the handle of the first direction slider most of the way right, as a user would. (Arrow keys on
    # the focused handle move it in JupyterLab 4.6 but did nothing in Notebook 7.6.)
    handle = page.locator(".ganlib-direction-0 .noUi-handle").first
    track = page.locator(".ganlib-direction-0 .noUi-target").first
    handle.scroll_into_view_if_needed()
    h, t = handle.bounding_box(), track.bounding_box()
    y = h["y"] + h["height"] / 2
    page.mouse.move(h["x"] + h["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(t["x"] + 0.85 * t["width"], y, steps=8)
    page.mouse.up()
    wait_until(lambda: readout.inner_text() != start_value, 10, "the slider readout to move")
    wait_until(lambda: pixels(image) != before, IMAGE_CHANGE_S, "the latent image to change")
    page.screenshot(path=str(tmp_path / f"{app}.png"))
    image.screenshot(path=str(tmp_path / f"{app}-latent.png"))

    # The paired generator's explorer: the mask toggle tints the slice, the position slider moves the cut.
    paired = page.locator("img.ganlib-latent-image").nth(1)
    paired.scroll_into_view_if_needed()
    wait_until(lambda: paired.evaluate("i => i.complete && i.naturalWidth > 0"), 30, "the paired explorer's image")
    before = pixels(paired)
    page.locator(".ganlib-mask-toggle input").check()
    wait_until(lambda: pixels(paired) != before, IMAGE_CHANGE_S, "the mask overlay to appear")
    paired.screenshot(path=str(tmp_path / f"{app}-pairs-mask.png"))


def check_in_browser(app: str, url_path: str, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium: install Debian's chromium (/usr/bin/chromium) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
    committed = (REPO / NOTEBOOK).read_bytes()
    try:
        with jupyter_server(app, tmp_path) as (base, token), sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{base}{url_path}?token={token}", wait_until="domcontentloaded")
                try:
                    run_all_and_move_a_slider(page, base, token, app, tmp_path)
                except BaseException:
                    with contextlib.suppress(Exception):
                        page.screenshot(path=str(tmp_path / f"{app}-failure.png"))
                        print(f"prompts: {page.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()}")
                    raise
            finally:
                browser.close()
    finally:
        if (REPO / NOTEBOOK).read_bytes() != committed:
            (REPO / NOTEBOOK).write_bytes(committed)
            pytest.fail(f"{NOTEBOOK} was written by the {app} session (restored); autosave should be off")


def test_latent_slider_in_jupyterlab(tmp_path):
    check_in_browser("jupyterlab", f"/lab/tree/{NOTEBOOK}", tmp_path)


def test_latent_slider_in_notebook7(tmp_path):
    pytest.importorskip("notebook", reason="the notebook package (Notebook 7) is not installed")
    check_in_browser("notebook", f"/notebooks/{NOTEBOOK}", tmp_path)
