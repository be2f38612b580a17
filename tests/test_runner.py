"""The `workbook` CLI end to end, on a notebook that runs in seconds."""

import csv
import json
import re

import nbformat
import pytest
from conftest import TINY
from nbformat.sign import NotebookNotary


def test_run_writes_executed_notebook_html_and_results(cli, tmp_path):
    done = cli("run", str(TINY), "-p", "scale", "3", "-p", "values", "1,2,3", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "total=54" in done.stdout  # one summary line with the recorded numbers
    [result] = json.loads((tmp_path / "results.json").read_text())
    assert result["status"] == "ok"
    assert result["results"] == {"total": 54.0, "label": "tiny", "fast_mode": False}
    assert result["parameters"] == {"scale": 3.0, "values": [1.0, 2.0, 3.0]}

    executed = nbformat.read(tmp_path / "tiny.ipynb", as_version=4)
    assert NotebookNotary().check_signature(executed), "executed notebooks must be trusted"
    html = (tmp_path / "tiny.html").read_text()
    assert "Plotly.newPlot" in html, "plotly figures must survive the HTML export"
    assert not re.search(r'<script[^>]+src="https?://[^"]*(plot|require)', html), "no plotly/require.js from a CDN"


def test_fast_flag_reaches_the_notebook(cli, tmp_path):
    done = cli("run", "tests/fixtures/tiny.ipynb", "--fast", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "results.json").read_text())[0]["results"]["fast_mode"] is True


def test_failing_notebook_reports_its_error(cli, tmp_path):
    done = cli("run", str(TINY), "-p", "count", "0", "--out", str(tmp_path))
    assert done.returncode == 1
    assert "parameter count=0 is out of range; allowed: [1, 100]" in done.stdout
    [result] = json.loads((tmp_path / "results.json").read_text())
    assert result["status"] == "failed" and "count=0" in result["error"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "77"], "unknown notebook '77'; available: 00_model_zoo, 01_superposition"),
        (["run", str(TINY), "-p", "scal", "1"], "unknown parameter 'scal' for tiny.ipynb; valid: scale"),
        (["run", str(TINY), "-p", "count", "many"], "parameter count: 'many' is not a valid int"),
        (["sweep", str(TINY), "-p", "fail", "true,perhaps"], "parameter fail: 'perhaps' is not a valid bool"),
        (["sweep", str(TINY)], "sweep needs at least one -p"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_runs_nothing(cli, tmp_path, args, message):
    done = cli(*args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"workbook: error: {done.stderr.split('error: ', 1)[1].strip()}"]
    assert message in done.stderr
    assert not (tmp_path / "out").exists(), "nothing may be executed for bad input"


def test_list_shows_notebooks_and_typed_parameters(cli):
    done = cli("list")
    assert done.returncode == 0
    assert "01_superposition.ipynb" in done.stdout
    assert "-p fast" in done.stdout and "bool" in done.stdout


def _csv_rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_sweep_grid_failures_and_resume(cli, tmp_path):
    args = ["sweep", str(TINY), "-p", "scale", "1,2", "-p", "fail", "false,true", "--out", str(tmp_path), "--jobs", "2"]
    done = cli(*args)
    assert done.returncode == 1, "a failing point makes the sweep exit non-zero"
    assert "asked to fail" in done.stderr + done.stdout
    rows = _csv_rows(tmp_path / "results.csv")
    assert len(rows) == 4
    ok = {(r["scale"], r["fail"]): r for r in rows}
    assert ok[("1.0", "False")]["total"] == "9.0" and ok[("2.0", "False")]["total"] == "18.0"
    assert {r["status"] for r in rows if r["fail"] == "True"} == {"failed"}
    assert all("asked to fail" in r["error"] for r in rows if r["fail"] == "True")

    finished = sorted(tmp_path.glob("*fail=false*/result.json"))
    stamps = [p.stat().st_mtime_ns for p in finished]
    again = cli(*args)
    assert [p.stat().st_mtime_ns for p in finished] == stamps, "finished points must not rerun"
    assert "2/4 points ok" in again.stdout
    assert len(_csv_rows(tmp_path / "results.csv")) == 4


def test_sweep_list_parameter_uses_semicolons(cli, tmp_path):
    done = cli("sweep", str(TINY), "-p", "values", "1,2;3", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    totals = sorted(float(r["total"]) for r in _csv_rows(tmp_path / "results.csv"))
    assert totals == [18.0, 18.0]  # 2*(1+2)*3 and 2*3*3
