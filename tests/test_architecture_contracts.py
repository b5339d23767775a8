"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they do catch a back-import or a cycle.

    experiments (CLI modules > experiments.jobs) > interventions > activations | behaviour | probes > common
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common import REPO_ROOT

PACKAGES = ("common", "activations", "behaviour", "probes", "interventions", "experiments")
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the tree at ``root`` with its pyproject.toml, in this interpreter's environment."""
    return subprocess.run([sys.executable, "-c", LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_contracts_are_kept() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    for contract in ("Layers:", "do not import each other", "never import the command-line", "No import cycle"):
        assert contract in result.stdout  # every contract was checked, none silently dropped


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("probes/metrics.py", "import behaviour.scenario", "do not import each other"),  # sibling import
    ("activations/store.py", "import experiments.jobs.probe", "Layers:"),  # lower layer imports a higher one
    ("common/stats.py", "import probes.directions", "Layers:"),
    ("experiments/jobs/probe.py", "import experiments.probe", "never import the command-line"),
    ("probes/metrics.py", "import probes.sweep", "No import cycle"),  # sweep imports metrics
])
def test_a_back_import_breaks_a_contract(tree_copy: Path, module: str, line: str, broken: str) -> None:
    path = tree_copy / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n\ndef _late() -> None:\n    {line}  # noqa\n")  # even a lazy import counts
        result = lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    broken_lines = [ln for ln in result.stdout.splitlines() if " BROKEN" in ln]
    assert any(broken in ln for ln in broken_lines), result.stdout
