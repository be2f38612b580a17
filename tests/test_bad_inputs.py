"""Every bad input ends in one line and an exit code, never a traceback, and leaves nothing
half-written behind or reported as done.

Exit 2: usage (the command, a parameter, an output folder), before any kernel starts.
Exit 1: a run that started and failed. Exit 130: Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY, run_cli


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("workbook: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, f"expected one error line, got:\n{stderr[-2000:]}"
    return errors[0]


USAGE = [
    ([], "the following arguments are required: command"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run"], "the following arguments are required: notebook"),
    (["run", "77"], "unknown notebook '77'; available: 00_model_zoo"),
    (["run", str(TINY), "-p", "scal", "1"], "unknown parameter 'scal' for tiny.ipynb; valid: scale"),
    (["run", str(TINY), "-p", "count", "many"], "parameter count: 'many' is not a valid int"),
    (["run", "01", "-p", "seed", "-1"], "parameter seed=-1 is out of range; allowed: 0 <= seed < 2**32"),
    (["run", "01", "-p", "seed", "4294967296"], "parameter seed=4294967296 is out of range"),
    (["run", "01", "-p", "fast", "maybe"], "parameter fast: 'maybe' is not a valid bool"),
    (["run", "01", "-p", "seed"], "argument -p/--parameter: expected 2 arguments"),
    (["run", "02", "-p", "segment_max", "40"], "segment_max=40 is out of range; allowed: segment_min <= segment_max"),
    (["run", "04", "-p", "architecture", "tanh"], "architecture='tanh' is out of range; allowed: architecture in"),
    (["run", "05", "-p", "sizes", "256,x"], "parameter sizes: '256,x' is not a valid list[int]"),
    (["run", "01", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "01", "--fast", "-p", "steps", "10"], "steps=10 is out of range; allowed: 100 <= steps"),
    (["sweep", str(TINY)], "sweep needs at least one -p"),
    (["sweep", str(TINY), "-p", "fail", "true,perhaps"], "parameter fail: 'perhaps' is not a valid bool"),
    (["sweep", "01", "-p", "seed", "0,-1"], "parameter seed=-1 is out of range"),
    (["sweep", str(TINY), "-p", "count", "1", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["sweep", str(TINY), "-p", "count", "1", "--jobs", "x"], "argument --jobs: invalid int value: 'x'"),
    (["train-zoo", "nosuch"], "unknown zoo model 'nosuch'; choose one of"),
    (["train-zoo", "zoo-gelu-1l-a", "--steps", "-5"], "argument --steps: -5 is out of range; allowed: 1 or more"),
    (["train-zoo", "zoo-gelu-1l-a", "--batch", "x"], "argument --batch: 'x' is not a whole number"),
    (["train-zoo", "zoo-gelu-1l-a", "--threads", "0"], "argument --threads: 0 is out of range"),
    (["build", "9"], "no source in sources/ matches ['9']"),
    (["list", "extra"], "unrecognized arguments: extra"),
]


@pytest.mark.parametrize("args, message", USAGE, ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_usage_errors_are_one_line_exit_2_and_run_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    extra = ["--out", str(out)] if args and args[0] in ("run", "sweep") and "--bogus" not in args else []
    done = run_cli(*args, *extra, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in _one_line(done.stderr)
    assert not out.exists(), "nothing may be written for bad input"


@pytest.mark.parametrize(
    "command",
    [["run", str(TINY)], ["sweep", str(TINY), "-p", "count", "1"], ["run-all"], ["train-zoo", "zoo-gelu-1l-a"]],
    ids=lambda c: c[0],
)
def test_output_folder_that_is_a_file(tmp_path, command):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep me")
    done = run_cli(*command, "--out", str(a_file), timeout=120)
    assert done.returncode == 2
    assert f"--out {a_file} is a file" in _one_line(done.stderr)
    assert a_file.read_text() == "keep me"


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_output_folder_that_cannot_be_written(tmp_path, where):
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" / "sub" if where == "under-a-file" else "/proc/workbook-test-out"
    done = run_cli("run", str(TINY), "--out", str(out), timeout=120)
    assert done.returncode == 2
    assert "cannot write there" in _one_line(done.stderr)


def test_a_failing_run_is_one_line_exit_1_and_reported_failed(tmp_path):
    done = run_cli("run", str(TINY), "-p", "fail", "true", "--out", str(tmp_path), timeout=240)
    assert done.returncode == 1
    assert "RuntimeError: asked to fail" in done.stdout and "Traceback" not in done.stdout + done.stderr
    [result] = json.loads((tmp_path / "results.json").read_text())
    assert result["status"] == "failed"


def test_the_kernel_tcp_warning_is_not_shown(tmp_path):
    done = run_cli("run", str(TINY), "--out", str(tmp_path), timeout=240)
    assert done.returncode == 0
    assert "without encryption" not in done.stderr + done.stdout


def test_ctrl_c_in_a_sweep_keeps_finished_points_and_resume_finishes(tmp_path):
    """Ctrl-C reaches the whole process group, the kernel too, as in a terminal."""
    out = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "interp_helpers.workbook.cli",
        "sweep",
        str(TINY),
        "-p",
        "count",
        "1,2,3",
        "-p",
        "sleep",
        "3",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # pytest-xdist workers ignore SIGINT, and an ignored signal stays ignored in children:
        # give the command a terminal's default, as a user's shell would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until one point is done, then interrupt the next
        csv_file = out / "results.csv"
        if csv_file.exists() and len(csv_file.read_text().strip().splitlines()) >= 2:
            break
        time.sleep(0.3)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted; finished results are kept" in _one_line(stderr)
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert all(",ok," in row for row in rows[1:]), "an interrupted point must not be reported"
    finished = [p for p in out.iterdir() if (p / "result.json").exists()]
    assert len(finished) == len(rows) - 1 < 3
    assert not list(out.rglob(".*.tmp")), "no half-written files"

    done = run_cli(*args[3:], timeout=300)  # the same command resumes
    assert done.returncode == 0, done.stderr
    assert "3/3 points ok" in done.stdout
    assert len((out / "results.csv").read_text().strip().splitlines()) == 4


def test_a_damaged_sweep_marker_reruns_the_point(tmp_path):
    from interp_helpers.workbook.runner import _load_finished, point_dir_name

    point = tmp_path / point_dir_name({"count": 1})
    point.mkdir()
    (point / "result.json").write_text('{"notebook": "tiny.ipynb", "stat')  # cut off mid-write
    assert _load_finished(point) is None


# ---------------------------------------------------------------- damaged files the library reads


@pytest.fixture
def copied_zoo_model(tmp_path):
    import shutil

    from interp_helpers.modelzoo.models import ZOO_DIR

    shutil.copytree(ZOO_DIR / "zoo-attn-only-2l", tmp_path / "zoo-attn-only-2l")
    return tmp_path


def _error_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_truncated_checkpoint_is_named(copied_zoo_model):
    from interp_helpers.modelzoo.models import CheckpointError, load_model

    weights = copied_zoo_model / "zoo-attn-only-2l" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as excinfo:
        load_model("zoo-attn-only-2l", zoo_dir=copied_zoo_model)
    assert "model.safetensors: cannot read weights, the file is truncated or corrupt" in _error_line(excinfo)


def test_missing_config_is_named_with_the_fix(copied_zoo_model):
    from interp_helpers.modelzoo.models import CheckpointError, load_model

    (copied_zoo_model / "zoo-attn-only-2l" / "config.json").unlink()
    with pytest.raises(CheckpointError) as excinfo:
        load_model("zoo-attn-only-2l", zoo_dir=copied_zoo_model)
    assert "config.json: missing (retrain with `workbook train-zoo zoo-attn-only-2l`)" in _error_line(excinfo)


def _small_cache(directory):
    from interp_helpers.dictionaries.activations import cache_activations

    batches = [torch.randn(64, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    return cache_activations(iter(batches), directory, n_tokens=256, shard_tokens=64, hook_name="x")


def test_activation_cache_with_a_damaged_shard(tmp_path):
    from interp_helpers.dictionaries.activations import CachedActivations
    from interp_helpers.modelzoo.models import CheckpointError

    _small_cache(tmp_path / "cache")
    shard = sorted((tmp_path / "cache").glob("*.safetensors"))[1]
    shard.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError) as excinfo:
        CachedActivations(tmp_path / "cache")
    assert shard.name in _error_line(excinfo)


def test_activation_cache_that_never_finished(tmp_path):
    from interp_helpers.dictionaries.activations import MANIFEST_FILE, CachedActivations
    from interp_helpers.modelzoo.models import CheckpointError

    _small_cache(tmp_path / "cache")
    (tmp_path / "cache" / MANIFEST_FILE).unlink()  # what an interrupted cache_activations leaves
    with pytest.raises(CheckpointError) as excinfo:
        CachedActivations(tmp_path / "cache")
    assert "cache_activations did not finish" in _error_line(excinfo)


def test_sae_checkpoint_with_wrong_shapes(tmp_path):
    from safetensors.torch import load_file, save_file

    from interp_helpers.dictionaries.sae import SAE, SAEConfig, load_sae, save_sae
    from interp_helpers.modelzoo.models import CheckpointError

    cfg = SAEConfig(d_in=8, d_sae=16, k=4)
    save_sae(SAE(cfg), cfg, tmp_path / "sae")
    weights_path = next((tmp_path / "sae").glob("*.safetensors"))
    weights = load_file(str(weights_path))
    weights["W_dec"] = weights["W_dec"][:4]
    save_file(weights, str(weights_path))
    with pytest.raises(CheckpointError) as excinfo:
        load_sae(tmp_path / "sae")
    assert "W_dec has shape (4, 8)" in _error_line(excinfo)
