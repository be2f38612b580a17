"""The workbook's notebooks and their declared parameters.

A notebook declares its knobs in the one cell tagged `parameters`, one per line:

    n_features: int = 5  # features in the toy model

The runner reads those lines (never executing them) to list parameters, to parse
command-line values by their declared type, and to reject unknown names before a
kernel starts. Papermill alone would turn `-p xs 1,2` into a string and only warn
about unknown names.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
SUPPORTED_TYPES = ("int", "float", "bool", "str", "list[int]", "list[float]", "list[str]")


class CatalogError(ValueError):
    """A notebook or parameter the user named does not exist or does not parse."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # one of SUPPORTED_TYPES
    default: Any
    help: str = ""

    def parse(self, text: str) -> Any:
        """Parse a command-line string into this parameter's declared type."""
        try:
            return _parse_value(self.type, text)
        except (ValueError, SyntaxError) as err:
            raise CatalogError(
                f"parameter {self.name}: {text!r} is not a valid {self.type} ({err})"
            ) from None


@dataclass(frozen=True)
class NotebookInfo:
    path: Path
    title: str
    parameters: dict[str, Parameter]

    @property
    def key(self) -> str:
        """The short name a user types: the number prefix, e.g. '01'."""
        return self.path.name.split("_", 1)[0]

    def parse_parameters(self, raw: list[tuple[str, str]]) -> dict[str, Any]:
        """Turn `[(name, text), ...]` from `-p NAME VALUE` into typed values."""
        parsed = {}
        for name, text in raw:
            if name not in self.parameters:
                raise CatalogError(
                    f"unknown parameter {name!r} for {self.path.name}; "
                    f"valid: {', '.join(self.parameters) or '(none)'}"
                )
            parsed[name] = self.parameters[name].parse(text)
        return parsed


def _parse_value(type_name: str, text: str) -> Any:
    if type_name == "bool":
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no"}:
            return False
        raise ValueError("use true/false")
    if type_name == "int":
        return int(text)
    if type_name == "float":
        return float(text)
    if type_name == "str":
        return text
    inner = type_name[len("list[") : -1]
    text = text.strip()
    if text.startswith("["):
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("expected a JSON list")
        return [_parse_value(inner, str(item)) for item in items]
    return [_parse_value(inner, item) for item in text.split(",") if item.strip()]


def _comments_by_line(source: str) -> dict[int, str]:
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


def parse_parameters_cell(source: str) -> dict[str, Parameter]:
    """Read `name: type = literal  # help` lines; anything else is an error."""
    tree = ast.parse(source)
    comments = _comments_by_line(source)
    params = {}
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value):
            raise CatalogError(
                f"parameters cell line {node.lineno}: expected 'name: type = literal', got "
                f"{ast.unparse(node)!r}"
            )
        type_name = ast.unparse(node.annotation).replace(" ", "")
        if type_name not in SUPPORTED_TYPES:
            raise CatalogError(
                f"parameter {node.target.id}: type {type_name} not supported; use one of {SUPPORTED_TYPES}"
            )
        default = ast.literal_eval(node.value)
        params[node.target.id] = Parameter(node.target.id, type_name, default, comments.get(node.lineno, ""))
    return params


def _title(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def read_notebook_info(path: Path) -> NotebookInfo:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise CatalogError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    return NotebookInfo(path=path, title=_title(nb), parameters=parse_parameters_cell(cells[0].source))


def list_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Numbered notebooks (`NN_name.ipynb`), in order."""
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def find_notebook(name: str, notebook_dir: Path = NOTEBOOK_DIR) -> NotebookInfo:
    """Resolve '01', '1', '01_superposition', the file name, or a path."""
    candidate = Path(name)
    if candidate.suffix == ".ipynb" and candidate.exists():
        return read_notebook_info(candidate)
    available = list_notebooks(notebook_dir)
    stem = candidate.stem
    for path in available:
        number = path.name.split("_", 1)[0]
        if stem in (path.stem, number) or (stem.isdigit() and int(stem) == int(number)):
            return read_notebook_info(path)
    choices = ", ".join(p.stem for p in available) or "(none)"
    raise CatalogError(f"unknown notebook {name!r}; available: {choices}")
