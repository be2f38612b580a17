"""JavaScript bundles (plotly.js, circuitsvis) stored once per exported file.

A view that needs a bundle inlines it behind a marked `<script data-workbook-bundle=...>`
and draws through `when_ready`; the exporter (`workbook.export`) keeps the first copy of
each bundle in a file, gzipped, and drops the others. Both sides need these helpers, so
they live here, below the runner and the science alike.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
from pathlib import Path

# Bundle name -> the global it defines. The live output of a view may inline its bundle
# raw; the exporter swaps the first marked script of a file for the compressed loader
# and drops the others.
BUNDLE_GLOBALS = {"plotly": "Plotly", "circuitsvis": "CircuitsVis"}
BUNDLE_SCRIPT = re.compile(
    r'<script\b[^>]*\sdata-workbook-bundle="(?P<name>[\w-]+)"[^>]*>.*?</script>', re.DOTALL | re.IGNORECASE
)


def bundle_source(name: str) -> str:
    """The JavaScript of a bundle, as the installed package ships it."""
    if name == "plotly":
        from plotly.offline import get_plotlyjs

        return get_plotlyjs()
    if name == "circuitsvis":
        import circuitsvis

        path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
        return path.read_text(encoding="utf-8")
    raise ValueError(f"unknown bundle {name!r}; known: {sorted(BUNDLE_GLOBALS)}")


def register_script(name: str) -> str:
    """JavaScript to run right after a bundle's raw source: publishes its global to `when_ready`."""
    glob = BUNDLE_GLOBALS[name]
    return f'\n;(window.__workbook = window.__workbook || {{}})["{name}"] = Promise.resolve({glob});\n'


@functools.cache
def bundle_loader(name: str) -> str:
    """A `<script>` holding the bundle gzipped and base64-encoded, which inflates and runs it once."""
    glob = BUNDLE_GLOBALS[name]
    packed = base64.b64encode(gzip.compress(bundle_source(name).encode("utf-8"), 9, mtime=0)).decode("ascii")
    return (
        f'<script type="text/javascript" data-workbook-bundle="{name}">\n'
        "(function () {\n"
        "  var w = (window.__workbook = window.__workbook || {});\n"
        f'  if (w["{name}"]) return;\n'
        f'  var bin = atob("{packed}"), bytes = new Uint8Array(bin.length);\n'
        "  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);\n"
        f'  w["{name}"] = new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")))\n'
        f"    .text().then(function (src) {{ "
        f'return (window["{glob}"] = new Function(src + "\\n;return {glob};")()); }});\n'
        "})();\n"
        "</script>"
    )


def when_ready(name: str, body: str, element_id: str) -> str:
    """JavaScript that runs `body` (with the bundle's global in scope) once the bundle has loaded.

    If no bundle turns up (its only copy is in an output that was cleared), the element
    named `element_id` says so instead of staying blank.
    """
    glob = BUNDLE_GLOBALS[name]
    return (
        "(function draw(tries) {\n"
        f'  var ready = window.__workbook && window.__workbook["{name}"];\n'
        f"  var el = document.getElementById({json.dumps(element_id)});\n"
        "  if (!ready) {\n"
        "    if (tries < 600) { setTimeout(function () { draw(tries + 1); }, 50); }\n"
        f'    else if (el) {{ el.textContent = "{name} did not load: its code is stored once per notebook, '
        f'with the first view that uses it; run that cell again."; }}\n'
        "    return;\n"
        "  }\n"
        f"  ready.then(function ({glob}) {{\n{body}\n  }}, function (err) {{ if (el) el.textContent = "
        f'"{name} failed to load: " + err; }});\n'
        "})(0);"
    )
