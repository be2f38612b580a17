"""Key numbers recorded by a notebook, stored inside its executed copy.

`record(name, value)` displays the value and attaches it to the cell output under a
private MIME type. The runner reads those outputs back from the executed notebook,
so no side files are written and a result can never drift from the notebook that
produced it.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing nbformat costs a second (jsonschema), and a kernel calling record() never needs it
    import nbformat

RESULT_MIME = "application/vnd.interp-workbook.result+json"


def _to_json_value(value: Any) -> Any:
    """Plain JSON for numbers, strings, bools and (nested) lists of them."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # torch / numpy scalars
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"record: value {value!r} is not finite")
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    if hasattr(value, "tolist"):
        return _to_json_value(value.tolist())
    raise TypeError(f"record: cannot store a {type(value).__name__}; use a number, string, bool or list")


def record(name: str, value: Any, *, unit: str = "") -> Any:
    """Show `value` under `name` and store it in the executed notebook for the runner.

    Returns the stored (JSON-plain) value, so `x = record("x", tensor.mean())` works.
    """
    if not name.isidentifier():
        raise ValueError(f"record: name {name!r} must be a valid identifier (letters, digits, _)")
    stored = _to_json_value(value)
    shown = f"{stored:.4g}" if isinstance(stored, float) else repr(stored)
    text = f"[record] {name} = {shown}{' ' + unit if unit else ''}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the workbook
        print(text)
        return stored
    if get_ipython() is None:
        print(text)
    else:
        display({"text/plain": text, RESULT_MIME: {"name": name, "value": stored, "unit": unit}}, raw=True)
    return stored


def read_results(notebook: nbformat.NotebookNode | str) -> dict[str, Any]:
    """Collect every `record(...)` from an executed notebook, in order; later wins."""
    if isinstance(notebook, str):
        import nbformat

        notebook = nbformat.read(notebook, as_version=4)
    nb = notebook
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(RESULT_MIME)
            if payload is not None:
                found[payload["name"]] = payload["value"]
    return found
