import re

import nbformat
import plotly.graph_objects as go

from interp_helpers.export import PLOTLY_MIME, add_plotly_html, notebook_to_html


def _notebook_with_figures(n):
    outputs = [
        nbformat.v4.new_output("display_data", data={PLOTLY_MIME: go.Figure(go.Bar(y=[i, 1])).to_plotly_json(),
                                                      "text/plain": "fig"})
        for i in range(n)
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=outputs)])


def test_plotly_outputs_become_html_with_one_inline_bundle():
    nb = _notebook_with_figures(3)
    assert add_plotly_html(nb) == 3
    htmls = [o["data"]["text/html"] for o in nb.cells[0].outputs]
    assert all("Plotly.newPlot" in h for h in htmls)
    bundle_marker = "plotly.js v"  # the bundle's banner comment
    assert [bundle_marker in h for h in htmls] == [True, False, False]


def test_notebook_to_html_keeps_the_original_notebook_lean():
    nb = _notebook_with_figures(1)
    html = notebook_to_html(nb)
    assert "Plotly.newPlot" in html
    external_scripts = re.findall(r'<script[^>]+src="(https?://[^"]+)"', html)
    assert not [url for url in external_scripts if "plot" in url or "require" in url], external_scripts
    assert PLOTLY_MIME in nb.cells[0].outputs[0]["data"], "export must not modify the executed notebook"
