"""environment.yml and pyproject.toml must ask for the same packages."""

import re
import tomllib

from conftest import ROOT


def _pip_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    deps = []
    for line in lines[start + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) < indent:
            break
        if line.strip().startswith("#"):  # a comment saying why a dependency is there
            continue
        deps.append(line.strip()[2:].strip())
    return deps


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = _pip_section((ROOT / "environment.yml").read_text())
    assert "-e ." in conda, "environment.yml must install the package itself (-e .)"
    assert sorted(map(_normalise, project["dependencies"])) == sorted(_normalise(d) for d in conda if d != "-e .")
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_torch_is_pinned_exactly():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = [d for d in deps if re.match(r"torch\b", d)]
    assert torch == ["torch==2.13.0"], "an unpinned torch pulls a multi-GB CUDA build"
    assert any(d.startswith("transformer-lens>=3.9,<4") for d in deps)
