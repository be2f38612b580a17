"""Make executed notebooks look right when opened: trusted .ipynb and self-contained HTML.

Plotly figures are stored as `application/vnd.plotly.v1+json`, which JupyterLab
renders but nbconvert's HTML exporter silently drops. Before exporting, each such
output gets an HTML rendering, and plotly.js is embedded once (inline, never from
a CDN) so the HTML works offline.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbformat.sign import NotebookNotary

PLOTLY_MIME = "application/vnd.plotly.v1+json"

# The lab template loads require.js from a CDN. Online, its AMD `define` captures the
# inline plotly.js bundle so `window.Plotly` never appears and every figure is blank;
# offline it is a dead request. Nothing in our outputs needs require.js.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
"""


def _plotly_outputs(nb: nbformat.NotebookNode):
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if PLOTLY_MIME in output.get("data", {}):
                yield output


def add_plotly_html(nb: nbformat.NotebookNode) -> int:
    """Give every plotly output an HTML rendering; return how many were converted.

    Works on a copy the caller owns: the `.ipynb` keeps the lean mimetype outputs.
    """
    import plotly.io as pio

    converted = 0
    for output in _plotly_outputs(nb):
        figure = output["data"][PLOTLY_MIME]
        html = pio.to_html(
            figure,
            include_plotlyjs=converted == 0,  # the bundle once, inline, before the first figure
            full_html=False,
            validate=False,
        )
        output["data"] = {"text/html": html}
        converted += 1
    return converted


def notebook_to_html(nb: nbformat.NotebookNode) -> str:
    """A standalone HTML page of an executed notebook, figures included."""
    copy = nbformat.from_dict(nb)
    add_plotly_html(copy)
    exporter = HTMLExporter(
        template_name="lab",
        template_file="workbook.html.j2",
        extra_loaders=[jinja2.DictLoader({"workbook.html.j2": _TEMPLATE})],
    )
    body, _ = exporter.from_notebook_node(copy)
    return body


def trust(nb: nbformat.NotebookNode) -> None:
    """Sign the notebook so JupyterLab runs its JavaScript outputs (circuitsvis, widgets)."""
    NotebookNotary().sign(nb)


def write_executed(nb: nbformat.NotebookNode, ipynb_path: Path) -> Path:
    """Write the trusted `.ipynb` and its `.html` twin; return the HTML path."""
    html_path = ipynb_path.with_suffix(".html")
    html_path.write_text(notebook_to_html(nb), encoding="utf-8")
    trust(nb)
    nbformat.write(nb, ipynb_path)
    return html_path
