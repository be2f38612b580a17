"""Notebook 01 in a real JupyterLab, driven by headless Debian chromium through Playwright.

Checks what a student sees: after Run All, the explorer's sliders and a plotly figure
render, and moving a slider retrains and redraws the figure. Playwright's own browser
download does not work offline, so the test uses /usr/bin/chromium. Under CI
(CI=true) a missing browser is a failure; elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, require_browser

pytestmark = pytest.mark.browser

TOKEN = "workbook-browser-test"
RUN_ALL_TIMEOUT_MS = 150_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a fast-mode copy of notebook 01 (the committed file is never touched)."""
    require_browser("browser test")
    nb = nbformat.read(ROOT / "notebooks" / "01_superposition.ipynb", as_version=4)
    [params] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params.source = params.source.replace("fast: bool = False", "fast: bool = True")
    assert "fast: bool = True" in params.source
    nbformat.write(nb, tmp_path / "01_superposition.ipynb")
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.open_browser=False",
            "--allow-root",
            "--LabApp.news_url=",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.5)
    yield f"{base}/lab/tree/01_superposition.ipynb?token={TOKEN}"
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def _figure_signature(page) -> str:
    """The drawn marks of the explorer's figure: changes when the figure is redrawn."""
    return page.locator(".widget-box .js-plotly-plot .scatterlayer").first.inner_html()


def test_explorer_sliders_and_figure_render_and_redraw(lab):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
        # Run All before the kernel is connected silently runs nothing: wait for an idle kernel.
        page.wait_for_function(
            "(() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k && k.status === 'idle'; })()",
            timeout=60_000,
        )
        # What Run > Run All Cells does, without depending on the menu's markup.
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        # The Checks cell prints this only after every assertion above it held.
        expect(page.locator(".jp-OutputArea-output", has_text="all checks passed")).to_have_count(
            1, timeout=RUN_ALL_TIMEOUT_MS
        )
        assert (
            page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .ansi-red-fg").count()
            == 0
        )

        # JupyterLab skips rendering cells outside the viewport, so scroll before asking "visible?".
        sliders = page.locator(".widget-box .widget-slider")
        assert sliders.count() >= 2, "the explorer has a density and an importance-decay slider"
        sliders.first.scroll_into_view_if_needed()
        expect(sliders.first).to_be_visible()
        expect(page.locator(".widget-box .js-plotly-plot").first).to_be_visible()
        expect(page.locator(".widget-box .js-plotly-plot .scatterlayer .trace").first).to_be_attached()

        before = _figure_signature(page)
        handle = sliders.first.locator(".noUi-handle, .slider-handle").first
        handle.focus()
        for _ in range(3):
            handle.press("ArrowLeft")
        deadline = time.monotonic() + 30
        while _figure_signature(page) == before:
            assert time.monotonic() < deadline, "moving the density slider did not redraw the figure"
            time.sleep(0.5)
        browser.close()
