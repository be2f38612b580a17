"""An exported HTML copy renders with the network cut off: math, a plotly figure, circuitsvis views.

A small notebook (math in markdown, a plotly figure, two attention views, the
superposition explorer) is executed with nbclient and written by `write_executed`, as
`workbook run` does; headless Debian chromium then opens the HTML copy offline, with
every request other than the file itself aborted, and checks what a reader sees. As in
tests/test_browser.py, a missing browser skips the test locally and fails it under CI.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, require_browser

from interp_helpers.workbook.export import write_executed

pytestmark = pytest.mark.browser

MB = 1_000_000

MATH = (
    r"The loss is $\sum_i I_i (x_i - x'_i)^2$ and a represented feature has $\lVert W_i \rVert \approx 1$."
    "\n\n"
    r"$$x' = \mathrm{ReLU}(W^\top W x + b)$$"
)
SETUP = """\
import torch
import plotly.graph_objects as go
from transformer_lens import HookedTransformer, HookedTransformerConfig
from interp_helpers.transformer_circuits import attention_view
from interp_helpers.superposition import explorer

cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=8, d_vocab=10,
                              attn_only=True, act_fn=None, seed=0)
model = HookedTransformer(cfg).eval()
tokens = torch.tensor([0, 3, 4, 3, 4])
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(ipynb path, html path) of the small notebook, executed in a kernel and exported."""
    require_browser("offline export test")
    from nbclient import NotebookClient

    from interp_helpers.workbook.runner import KERNEL_NAME

    folder = tmp_path_factory.mktemp("offline")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(MATH),
            nbformat.v4.new_code_cell(SETUP),
            nbformat.v4.new_code_cell("go.Figure(go.Scatter(y=[1, 3, 2], mode='lines+markers'))"),
            nbformat.v4.new_code_cell("attention_view.attention_heads(model, tokens, layer=0)"),
            nbformat.v4.new_code_cell("attention_view.attention_heads(model, tokens, layer=0, heads=[1])"),
            nbformat.v4.new_code_cell("explorer.superposition_explorer(density=0.3, steps=20, n_seeds=1)"),
        ]
    )
    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300, resources={"metadata": {"path": str(folder)}}).execute()
    ipynb = folder / "small.ipynb"
    return ipynb, write_executed(nb, ipynb)


def test_exported_files_are_light(exported):
    ipynb, html = exported
    assert ipynb.stat().st_size < 2 * MB and html.stat().st_size < 6 * MB
    assert "widgets" in nbformat.read(ipynb, as_version=4).metadata, "the live widget state is saved"


def test_html_copy_renders_offline(exported):
    from playwright.sync_api import expect, sync_playwright

    _, html = exported
    url = html.resolve().as_uri()
    requested, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_offline(True)
        context.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
        page = context.new_page()
        page.on(
            "request",
            lambda request: (
                request.url == url or request.url.startswith(("data:", "blob:")) or requested.append(request.url)
            ),
        )
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)

        # Math: MathML elements with a size, and no raw TeX left in the markdown.
        formulas = page.locator(".jp-MarkdownOutput math")
        expect(formulas).to_have_count(3)
        assert formulas.first.bounding_box()["width"] > 20
        assert "$" not in page.locator(".jp-MarkdownOutput").first.inner_text()

        # plotly: the figure and the explorer's snapshot, each drawn as SVG with a trace.
        plots = page.locator(".js-plotly-plot")
        expect(plots).to_have_count(2, timeout=30_000)
        for i in range(2):
            expect(plots.nth(i).locator("svg.main-svg .scatterlayer .trace").first).to_be_attached(timeout=30_000)
            assert plots.nth(i).bounding_box()["height"] > 100

        # circuitsvis: both views drew their heads (the second from the first view's bundle).
        views = page.locator("div[id^='circuits-vis-']")
        expect(views).to_have_count(2)
        for i, names in enumerate((["L0H0", "L0H1"], ["L0H1"])):
            expect(views.nth(i).locator("*").first).to_be_attached(timeout=30_000)
            for name in names:
                expect(views.nth(i)).to_contain_text(name, timeout=30_000)
            assert views.nth(i).bounding_box()["height"] > 100
        expect(page.get_by_text("did not load")).to_have_count(0)
        expect(page.get_by_text("failed to load")).to_have_count(0)
        browser.close()
    assert requested == [], f"the page asked the network for {requested}"
    assert errors == [], errors
