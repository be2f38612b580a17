"""Make executed notebooks look right when opened: trusted, light `.ipynb` and self-contained HTML.

Both files must work with no network (workshops with bad wifi) and stay small:

* Math in the HTML copy is rendered ahead of time to MathML (`latex2mathml`), which
  browsers draw natively: no MathJax, no CDN, no script at all.
* Plotly figures are stored as `application/vnd.plotly.v1+json`, which JupyterLab
  renders but nbconvert's HTML exporter silently drops. In the HTML copy each gets an
  HTML rendering that waits for plotly.js, which is embedded once.
* JavaScript bundles (plotly.js, circuitsvis) are kept once per file, gzipped and
  base64-encoded inside a marked `<script data-workbook-bundle=NAME>`; browsers
  inflate them with `DecompressionStream`. Views announce themselves with
  `when_ready`, so they draw whatever order their scripts run in.
* Widgets: the `.ipynb` keeps the live widget state (JupyterLab redraws the widgets);
  the HTML copy, which has no widget manager, shows a static snapshot of each
  widget (its values, text and Output contents) instead of loading one from a CDN.
"""

from __future__ import annotations

import copy
import html as html_lib
import re
import warnings
from pathlib import Path
from typing import Any

import nbformat

from interp_helpers.core.bundles import (
    BUNDLE_GLOBALS,
    BUNDLE_SCRIPT,
    bundle_loader,
    when_ready,
)  # noqa: F401

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"

# ---------------------------------------------------------------- JavaScript bundles


def _html_outputs(nb: nbformat.NotebookNode):
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text/html" in output.get("data", {}):
                yield output


def dedupe_bundles(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Keep one compressed copy of each bundle, in the first output that carries it.

    Returns, per bundle, how many copies were found. Idempotent.
    """
    found: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        found[name] = found.get(name, 0) + 1
        if name not in BUNDLE_GLOBALS:
            return match[0]
        return bundle_loader(name) if found[name] == 1 else ""

    for output in _html_outputs(nb):
        text = output["data"]["text/html"]
        text = "".join(text) if isinstance(text, list) else text
        if "data-workbook-bundle" in text:
            output["data"]["text/html"] = BUNDLE_SCRIPT.sub(replace, text)
    return found


# ---------------------------------------------------------------- plotly


def _plotly_outputs(nb: nbformat.NotebookNode):
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if PLOTLY_MIME in output.get("data", {}):
                yield output


def plotly_figure_html(figure: dict[str, Any]) -> str:
    """A figure's `<div>` and a script that draws it once plotly.js has loaded (no bundle)."""
    import plotly.io as pio

    html = pio.to_html(figure, include_plotlyjs=False, full_html=False, validate=False)
    div_id = re.search(r'<div id="([^"]+)" class="plotly-graph-div"', html)[1]
    start = html.index("<script", html.index(div_id)) + len("<script")
    start = html.index(">", start) + 1
    end = html.rindex("</script>")
    return html[:start] + "\n" + when_ready("plotly", html[start:end], div_id) + "\n" + html[end:]


def add_plotly_html(nb: nbformat.NotebookNode) -> int:
    """Give every plotly output an HTML rendering; return how many were converted.

    plotly.js goes once, compressed, before the first figure. Works on a copy the
    caller owns: the `.ipynb` keeps the lean mimetype outputs.
    """
    converted = 0
    for output in _plotly_outputs(nb):
        html = plotly_figure_html(output["data"][PLOTLY_MIME])
        output["data"] = {"text/html": (bundle_loader("plotly") + "\n" if converted == 0 else "") + html}
        converted += 1
    return converted


# ---------------------------------------------------------------- math


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """MathML for a TeX formula; the TeX itself, as code, if it cannot be converted."""
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display="block" if display else "inline")
    except Exception as err:  # an unsupported macro: show the source rather than fail the export
        warnings.warn(f"could not convert ${tex}$ to MathML ({err}); the HTML copy shows its TeX", stacklevel=2)
        delim = "$$" if display else "$"
        return f'<code class="workbook-tex">{html_lib.escape(delim + tex + delim)}</code>'


def _mathml_exporter():
    """An nbconvert HTML exporter (lab template) that writes math as MathML and loads no CDN script."""
    import jinja2
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def inline_math(self, body: str) -> str:
            return tex_to_mathml(body)

        def block_math(self, body: str) -> str:
            return tex_to_mathml(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class MathMLExporter(HTMLExporter):
        @jinja2.pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False,
                attachments=cell.get("attachments", {}),
                embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options,
            )
            return MarkdownWithMath(renderer=renderer).render(source)

    return MathMLExporter(
        template_name="lab",
        template_file="workbook.html.j2",
        extra_loaders=[jinja2.DictLoader({"workbook.html.j2": _TEMPLATE})],
    )


# The lab template loads require.js, MathJax, mermaid and the widget manager from CDNs.
# Online, require.js's AMD `define` captures plotly.js so `window.Plotly` never appears;
# offline every one of them is a dead request. Math is MathML here, widgets are
# snapshots, and no notebook draws mermaid diagrams.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
<style>
math { font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", math; font-size: 1.05em; }
math[display="block"] { margin: 0.6em 0; }
.workbook-widget-note { color: var(--jp-ui-font-color2, #757575); font-style: italic; font-size: 0.9em; }
</style>
{%- endblock html_head_js_mathjax -%}
"""


# ---------------------------------------------------------------- widgets


def _widget_snapshot(states: dict[str, Any], model_id: str, depth: int = 0) -> tuple[list[str], list[dict]]:
    """(HTML lines, outputs) showing what a widget last displayed, children first to last."""
    model = states.get(model_id)
    if model is None or depth > 20:
        return [], []
    name, state = model.get("model_name", ""), model.get("state", {})
    if name == "OutputModel":
        return [], [copy.deepcopy(o) for o in state.get("outputs", [])]
    lines: list[str] = []
    outputs: list[dict] = []
    description = html_lib.escape(str(state.get("description", "")))
    if name in ("HTMLModel", "HTMLMathModel"):
        lines.append(str(state.get("value", "")))
    elif name == "LabelModel":
        lines.append(f"<div>{html_lib.escape(str(state.get('value', '')))}</div>")
    elif "value" in state and not isinstance(state["value"], (dict, list)):
        lines.append(f"<div>{description + ': ' if description else ''}{html_lib.escape(str(state['value']))}</div>")
    for child in state.get("children", []):
        child_lines, child_outputs = _widget_snapshot(states, str(child).removeprefix("IPY_MODEL_"), depth + 1)
        if child_outputs:  # keep the order: text so far, then the child's outputs
            if lines:
                outputs.append(_html_output("".join(lines)))
                lines = []
            outputs.extend(child_outputs)
        lines.extend(child_lines)
    if lines and outputs:
        outputs.append(_html_output("".join(lines)))
        lines = []
    return lines, outputs


def _html_output(html: str) -> dict:
    return nbformat.v4.new_output("display_data", data={"text/html": html})


def snapshot_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace widget views by static snapshots and drop the widget state; return how many."""
    states = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        new_outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW_MIME)
            if view is None:
                new_outputs.append(output)
                continue
            lines, outputs = _widget_snapshot(states, view.get("model_id", ""))
            note = (
                "<div class='workbook-widget-note'>Interactive widget, shown as it was last drawn; "
                "open the .ipynb in JupyterLab to use it.</div>"
            )
            new_outputs.append(_html_output(note + "".join(lines)))
            new_outputs.extend(nbformat.from_dict(o) for o in outputs)
            replaced += 1
        if "outputs" in cell:
            cell.outputs = new_outputs
    nb.metadata.pop("widgets", None)
    return replaced


# ---------------------------------------------------------------- files


def notebook_to_html(nb: nbformat.NotebookNode) -> str:
    """A standalone HTML page of an executed notebook: figures, views and math, no network needed."""
    page = copy.deepcopy(nb)
    snapshot_widgets(page)
    add_plotly_html(page)
    dedupe_bundles(page)
    for cell in page.cells:  # math-only outputs (text/latex) as MathML too
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/latex" in data and "text/html" not in data:
                data["text/html"] = _latex_output_html(data["text/latex"])
    body, _ = _mathml_exporter().from_notebook_node(page)
    return body


def _latex_output_html(latex: str) -> str:
    tex = latex.strip()
    for left, right, display in (("$$", "$$", True), ("\\[", "\\]", True), ("$", "$", False), ("\\(", "\\)", False)):
        if tex.startswith(left) and tex.endswith(right) and len(tex) > len(left) + len(right):
            return tex_to_mathml(tex[len(left) : -len(right)], display=display)
    return tex_to_mathml(tex, display=True)


def trust(nb: nbformat.NotebookNode) -> None:
    """Sign the notebook so JupyterLab runs its JavaScript outputs (circuitsvis, widgets)."""
    from nbformat.sign import NotebookNotary

    NotebookNotary().sign(nb)


def write_executed(nb: nbformat.NotebookNode, ipynb_path: Path) -> Path:
    """Write the trusted `.ipynb` (one compressed copy of each bundle) and its `.html` twin; return the HTML path."""
    html_path = ipynb_path.with_suffix(".html")
    html_path.write_text(notebook_to_html(nb), encoding="utf-8")
    dedupe_bundles(nb)
    trust(nb)
    nbformat.write(nb, ipynb_path)
    return html_path
