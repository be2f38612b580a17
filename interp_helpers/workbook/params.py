"""`check_parameters`: a notebook's setup cell checks the conditions its parameters cell declares."""

from __future__ import annotations

from typing import Any


def check_parameters(notebook: str, namespace: dict[str, Any]) -> None:
    """Check every parameter of `notebook` against the conditions its `parameters` cell declares.

    Called once in each notebook's setup cell as `check_parameters("01", globals())`: the
    same conditions `workbook run` checks before starting a kernel, so a value typed in
    JupyterLab fails with the same one-line message.
    """
    from interp_helpers.workbook.catalog import find_notebook

    info = find_notebook(notebook)
    missing = [name for name in info.parameters if name not in namespace]
    if missing:
        raise ValueError(f"parameters {missing} of {info.path.name} are not defined; run the parameters cell first")
    info.validate({name: namespace[name] for name in info.parameters})
