"""Conventions every committed notebook keeps (see docs/DESIGN.md)."""

import re

import nbformat
import pytest
from conftest import FIXTURES

from interp_helpers.workbook.catalog import list_notebooks, read_notebook_info

NOTEBOOKS = list_notebooks()
ALL = NOTEBOOKS + sorted(FIXTURES.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no numbered notebooks"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {index} has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parameters_cell_declares_fast_and_seed(path):
    info = read_notebook_info(path)  # exactly one `parameters` cell, every line typed
    assert info.parameters.get("fast") is not None and info.parameters["fast"].type == "bool"
    assert info.parameters["fast"].default is False, "fast must default to False"
    assert info.parameters.get("seed") is not None and info.parameters["seed"].type == "int"
    missing_help = [p.name for p in info.parameters.values() if not p.help]
    assert not missing_help, f"{path.name}: parameters without a '# comment': {missing_help}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    setup = code[first + 1].source
    assert re.search(r"check_parameters\(", setup), "the cell after `parameters` must validate them"
    assert "sys.path" not in "".join(c.source for c in code), "import the installed package; never edit sys.path"
    headings = [c.source for c in nb.cells if c.cell_type == "markdown"]
    checks_at = max(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "# Checks" in c.source)
    assert any("assert" in c.source for c in nb.cells[checks_at:] if c.cell_type == "code"), (
        "the Checks section must assert the notebook's claims"
    )
    assert "record(" in "".join(c.source for c in code), "record the key numbers with record()"
    assert nb.metadata.get("kernelspec", {}).get("name") == "interp-workbook"
    assert headings and headings[0].startswith("# ")


def test_notebook_numbers_are_unique():
    numbers = [p.name.split("_", 1)[0] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers))
