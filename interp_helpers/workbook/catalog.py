"""The workbook's notebooks and their declared parameters.

A notebook declares its knobs in the one cell tagged `parameters`, one per line,
with the allowed values as a Python condition before the first `;` of the comment:

    n_features: int = 5  # 2 <= n_features <= 1000; features in the toy model
    arch: str = "topk"  # arch in ("relu", "topk"); the SAE architecture
    densities: list[float] = [0.1]  # 0 < densities <= 1; checked for every element

A bound may use other parameters (`segment_min <= segment_max <= (seq_len - 1) // 2`),
arithmetic (`+ - * / // % **`, `min`, `max`, `len`) and `and` / `or`. The runner reads those lines (never
executing them) to list parameters, to parse command-line values by their declared
type, and to reject unknown names and out-of-range values before a kernel starts; the
notebook's setup cell checks the same conditions with `check_parameters`, so a value
typed in JupyterLab fails the same way. Papermill alone would turn `-p xs 1,2` into a
string and only warn about unknown names.
"""

from __future__ import annotations

import ast
import io
import json
import operator
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
SUPPORTED_TYPES = ("int", "float", "bool", "str", "list[int]", "list[float]", "list[str]")


class CatalogError(ValueError):
    """A notebook or parameter the user named does not exist or does not parse."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # one of SUPPORTED_TYPES
    default: Any
    help: str = ""
    condition: str = ""  # e.g. "0 <= seed < 2**32"; empty: any value of the type

    def check(self, value: Any, values: dict[str, Any]) -> None:
        """Raise CatalogError unless `value` has this type and meets the condition.

        `values` holds every parameter's value, for bounds that name other parameters.
        """
        _check_type(self, value)
        if not self.condition:
            return
        items = value if self.type.startswith("list") else [value]
        for item in items:
            if not _evaluate(ast.parse(self.condition, mode="eval").body, {**values, self.name: item}):
                bounds = _bounds_text(self.condition, self.name, values)
                shown = f"{self.name}={value!r}" + (f" (element {item!r})" if item is not value else "")
                raise CatalogError(f"parameter {shown} is out of range; allowed: {self.condition}{bounds}")

    def parse(self, text: str) -> Any:
        """Parse a command-line string into this parameter's declared type."""
        try:
            return _parse_value(self.type, text)
        except (ValueError, SyntaxError) as err:
            raise CatalogError(f"parameter {self.name}: {text!r} is not a valid {self.type} ({err})") from None


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
                    f"unknown parameter {name!r} for {self.path.name}; valid: {', '.join(self.parameters) or '(none)'}"
                )
            parsed[name] = self.parameters[name].parse(text)
        return parsed

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """Check every parameter (defaults overridden by `values`); return the full set."""
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise CatalogError(
                f"unknown parameter {unknown[0]!r} for {self.path.name}; "
                f"valid: {', '.join(self.parameters) or '(none)'}"
            )
        full = {name: p.default for name, p in self.parameters.items()} | dict(values)
        for name, parameter in self.parameters.items():
            parameter.check(full[name], full)
        return full


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


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_type(parameter: Parameter, value: Any) -> None:
    inner = parameter.type[len("list[") : -1] if parameter.type.startswith("list") else parameter.type
    items = value if parameter.type.startswith("list") and isinstance(value, list) else [value]
    if parameter.type.startswith("list") and not isinstance(value, list):
        items = [object()]  # not a list: reported below as the wrong type
    for item in items:
        if isinstance(item, bool) and inner != "bool" or not isinstance(item, _TYPES[inner]):
            raise CatalogError(f"parameter {parameter.name}={value!r} is not a {parameter.type}")


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS = {"min": min, "max": max, "len": len}


def _evaluate(node: ast.AST, names: dict[str, Any]) -> Any:
    """Evaluate a condition's arithmetic, comparisons and literals; nothing else runs."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise CatalogError(f"condition names {node.id!r}, which is not a parameter")
        return names[node.id]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [_evaluate(e, names) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, names), _evaluate(node.right, names))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        return _FUNCTIONS[node.func.id](*(_evaluate(a, names) for a in node.args))
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(v, names) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, names)
        for op, right_node in zip(node.ops, node.comparators):
            right = _evaluate(right_node, names)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise CatalogError(f"conditions may use numbers, parameters, arithmetic and comparisons, not {ast.unparse(node)!r}")


def _bounds_text(condition: str, name: str, values: dict[str, Any]) -> str:
    """' (here: 8 .. 31)' when a bound depends on other parameters, else ''."""
    node = ast.parse(condition, mode="eval").body
    parts = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
    computed = [
        _evaluate(p, values)
        for p in parts
        if not (isinstance(p, ast.Name) and p.id == name)
        and not isinstance(p, ast.Constant)
        and any(isinstance(n, ast.Name) for n in ast.walk(p))
    ]
    return f" (here: {' .. '.join(map(repr, computed))})" if computed else ""


def parse_condition(name: str, comment: str) -> tuple[str, str]:
    """Split a parameter's comment into (condition, help); no condition -> ('', comment)."""
    head, _, rest = comment.partition(";")
    try:
        node = ast.parse(head.strip(), mode="eval").body
    except SyntaxError:
        return "", comment
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if not isinstance(node, (ast.Compare, ast.BoolOp)) or name not in names:
        return "", comment
    for sub in ast.walk(node):  # validate the grammar once, with dummy values
        if isinstance(sub, ast.Call) and not (isinstance(sub.func, ast.Name) and sub.func.id in _FUNCTIONS):
            raise CatalogError(f"parameter {name}: condition {head.strip()!r} may only call min, max, len")
    return head.strip(), rest.strip()


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
                f"parameters cell line {node.lineno}: expected 'name: type = literal', got {ast.unparse(node)!r}"
            )
        type_name = ast.unparse(node.annotation).replace(" ", "")
        if type_name not in SUPPORTED_TYPES:
            raise CatalogError(
                f"parameter {node.target.id}: type {type_name} not supported; use one of {SUPPORTED_TYPES}"
            )
        default = ast.literal_eval(node.value)
        # The comment may sit on any line of the statement (a formatter can wrap a long one in parentheses).
        comment = next((comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments), "")
        condition, help_text = parse_condition(node.target.id, comment)
        params[node.target.id] = Parameter(node.target.id, type_name, default, help_text, condition)
    for parameter in params.values():  # defaults must meet their own conditions
        try:
            parameter.check(parameter.default, {n: p.default for n, p in params.items()})
        except CatalogError as err:
            raise CatalogError(f"default of {err}") from None
    return params


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _title(cells: list[dict[str, Any]]) -> str:
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def read_notebook_info(path: Path) -> NotebookInfo:
    # Plain JSON, not nbformat: importing nbformat (jsonschema) costs a second per command,
    # and the catalog needs only the cells' sources and tags.
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise CatalogError(f"{path}: not a readable notebook ({type(err).__name__}: {err})") from None
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise CatalogError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}")
    return NotebookInfo(path=path, title=_title(cells), parameters=parse_parameters_cell(_source(tagged[0])))


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
