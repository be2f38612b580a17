"""Shared fixtures: paths and a helper that runs the `workbook` CLI as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TINY = FIXTURES / "tiny.ipynb"


# SmolLM2's architecture (modelzoo/real_model.py) without its size: grouped-query attention
# (set n_key_value_heads), rotary, RMSNorm, gated SiLU MLP, no biases. The kernels' tests run
# on small random models of this shape as well as on the zoo's LayerNorm models.
LLAMA_STYLE = dict(
    act_fn="silu",
    gated_mlp=True,
    normalization_type="RMS",
    final_rms=True,
    positional_embedding_type="rotary",
    rotary_dim=8,
    rotary_adjacent_pairs=False,
    original_architecture="LlamaForCausalLM",
)


def pytest_configure(config):
    """Under `pytest -n N` (`make test` runs two workers), one torch thread per worker and per
    notebook kernel it starts: two processes each spinning two OpenMP threads on two cores run
    slower than one thread each."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and int(workers) > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


# Notebook runs take 20 s to 2 min each, unit tests seconds: started first, slowest first (and handed
# out two at a time, `--maxschedchunk 2` in the Makefile), the notebooks keep both pytest-xdist
# workers busy and the short tests fill the end.
SLOWEST_NOTEBOOKS_FIRST = ("06", "05", "04", "07", "03", "01", "02", "00")


def _schedule_key(item) -> tuple[int, int]:
    if item.get_closest_marker("notebook") is None:
        return (1, 0)
    for rank, number in enumerate(SLOWEST_NOTEBOOKS_FIRST):
        if f"[{number}_" in item.nodeid:
            return (0, rank)
    return (0, len(SLOWEST_NOTEBOOKS_FIRST))  # notebook tests with their own parameters


def pytest_collection_modifyitems(config, items):
    items.sort(key=_schedule_key)  # stable: otherwise the collected order


def run_cli(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `workbook ARGS...` with this interpreter; capture output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "interp_helpers.workbook.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def one_thread():
    """One torch thread: training is bit-identical only then, and tiny matmuls on two threads
    crawl when the other core is busy (a 2-core machine often is)."""
    from interp_helpers.core.validation import torch_threads

    with torch_threads(1):
        yield


# Debian's chromium, driven by Playwright: Playwright's own browser download needs a network.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def require_browser(what: str) -> None:
    """Skip when chromium or playwright is missing; under CI (CI=true) that is a failure."""
    missing = []
    if CHROMIUM is None:
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[browser]', which `make test` does)")
    if missing:
        message = f"{what} needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
