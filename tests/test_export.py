import re

import nbformat
import plotly.graph_objects as go
import pytest
import torch

from interp_helpers.workbook.export import (
    PLOTLY_MIME,
    WIDGET_STATE_MIME,
    WIDGET_VIEW_MIME,
    add_plotly_html,
    dedupe_bundles,
    notebook_to_html,
    tex_to_mathml,
    write_executed,
)

MB = 1_000_000
MATH = (
    r"Loss $\sum_i I_i (x_i - x'_i)^2$, with $\lVert W_i \rVert \approx 1$."
    "\n\n"
    r"$$x' = \mathrm{ReLU}(W^\top W x + b)$$"
)


def _notebook_with_figures(n):
    outputs = [
        nbformat.v4.new_output(
            "display_data", data={PLOTLY_MIME: go.Figure(go.Bar(y=[i, 1])).to_plotly_json(), "text/plain": "fig"}
        )
        for i in range(n)
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=outputs)])


def small_executed_notebook() -> nbformat.NotebookNode:
    """What an executed notebook holds, built in-process: math, a figure, two attention views, the explorer."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp_helpers.figures import plots
    from interp_helpers.superposition import explorer
    from interp_helpers.transformer_circuits import attention_view

    cfg = HookedTransformerConfig(
        n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=8, d_vocab=10, attn_only=True, act_fn=None, seed=0
    )
    model = HookedTransformer(cfg).eval()
    views = [attention_view.attention_heads(model, torch.tensor([0, 3, 4, 3, 4]), layer=0) for _ in range(2)]
    box = explorer.superposition_explorer(density=0.3, steps=20, n_seeds=1)
    figure = plots.figure_output(go.Figure(go.Scatter(y=[1, 3, 2])))
    return nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(MATH),
            nbformat.v4.new_code_cell(outputs=[nbformat.from_dict(figure)]),
            *[
                nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data={"text/html": v.html})])
                for v in views
            ],
            nbformat.v4.new_code_cell(
                outputs=[
                    nbformat.v4.new_output(
                        "display_data",
                        data={
                            WIDGET_VIEW_MIME: {"model_id": box.model_id, "version_major": 2, "version_minor": 0},
                            "text/plain": "VBox()",
                        },
                    )
                ]
            ),
        ],
        metadata={"widgets": {WIDGET_STATE_MIME: box.get_manager_state(widgets=[box, *_descendants(box)])}},
    )


def _descendants(widget):
    for child in getattr(widget, "children", ()):
        yield child
        yield from _descendants(child)
    for name in ("layout", "style"):
        if getattr(widget, name, None) is not None:
            yield getattr(widget, name)


def _bundle_counts(text: str) -> dict[str, int]:
    return {
        "plotly": text.count('data-workbook-bundle="plotly"'),
        "circuitsvis": text.count('data-workbook-bundle="circuitsvis"'),
        "raw plotly.js": text.count("plotly.js v"),  # the bundle's banner: only inside the compressed copy
        "raw circuitsvis": text.count("var CircuitsVis="),
        "mathjax": text.lower().count("mathjax.js") + text.count("MathJax.Hub"),
    }


def test_plotly_outputs_become_html_with_one_compressed_bundle():
    nb = _notebook_with_figures(3)
    assert add_plotly_html(nb) == 3
    htmls = [o["data"]["text/html"] for o in nb.cells[0].outputs]
    assert all("Plotly.newPlot" in h for h in htmls)
    assert ['data-workbook-bundle="plotly"' in h for h in htmls] == [True, False, False]
    assert "DecompressionStream" in htmls[0] and len(htmls[0]) > 1_000_000


def test_notebook_to_html_keeps_the_original_notebook_lean():
    nb = _notebook_with_figures(1)
    html = notebook_to_html(nb)
    assert "Plotly.newPlot" in html
    assert not re.findall(r"<script[^>]+src=", html)
    assert PLOTLY_MIME in nb.cells[0].outputs[0]["data"], "export must not modify the executed notebook"


def test_math_becomes_mathml_without_mathjax():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(MATH)])
    html = notebook_to_html(nb)
    assert html.count("<math ") == 3 and 'display="block"' in html
    body = html[html.index("<body") :]
    assert "$" not in re.sub(r"<script.*?</script>", "", body, flags=re.S), "raw TeX left in the page"
    assert "mathjax" not in html.lower()


def test_unconvertible_tex_is_shown_as_code():
    with pytest.warns(UserWarning):
        assert "workbook-tex" in tex_to_mathml(r"\frac{1}{")


def test_dedupe_keeps_one_compressed_copy_per_bundle():
    nb = small_executed_notebook()
    assert dedupe_bundles(nb) == {"circuitsvis": 2}
    assert dedupe_bundles(nb) == {"circuitsvis": 1}  # idempotent
    first, second = (c.outputs[0]["data"]["text/html"] for c in nb.cells[2:4])
    assert "DecompressionStream" in first and "data-workbook-bundle" not in second
    assert "CircuitsVis.render" in second  # the second view still draws, from the first view's bundle


def test_small_notebook_exports_are_light_and_self_contained(tmp_path):
    nb = small_executed_notebook()
    html_path = write_executed(nb, tmp_path / "small.ipynb")
    ipynb_text = (tmp_path / "small.ipynb").read_text()
    html = html_path.read_text()

    assert _bundle_counts(html) == {
        "plotly": 1,
        "circuitsvis": 1,
        "raw plotly.js": 0,
        "raw circuitsvis": 0,
        "mathjax": 0,
    }
    assert _bundle_counts(ipynb_text.replace('\\"', '"')) == {
        "plotly": 0,
        "circuitsvis": 1,
        "raw plotly.js": 0,
        "raw circuitsvis": 0,
        "mathjax": 0,
    }
    sources = re.findall(r"<script[^>]*\ssrc\s*=\s*[\"']?([^\"' >]+)", html)
    assert sources == [], sources
    assert not re.search(r"<script[^>]*>[^<]*https?://", html), "a script still fetches from the web"
    assert "cdn" not in " ".join(re.findall(r"<script[^>]*>", html)).lower()
    assert len(html) < 6 * MB and len(ipynb_text) < 2 * MB, (len(html), len(ipynb_text))

    # The .ipynb keeps the live widget state, with the explorer's figure as JSON, not plotly.js.
    saved = nbformat.read(tmp_path / "small.ipynb", as_version=4)
    states = saved.metadata["widgets"][WIDGET_STATE_MIME]["state"]
    [output_model] = [s for s in states.values() if s["model_name"] == "OutputModel"]
    assert PLOTLY_MIME in output_model["state"]["outputs"][0]["data"]
    assert not any("_esm" in s["state"] for s in states.values())
    # The HTML copy shows the explorer's last figure and its slider values instead of the widget.
    assert html.count("Plotly.newPlot") == 2 and "density: 0.3" in html
    assert WIDGET_STATE_MIME not in html
