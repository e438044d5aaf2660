"""The import direction of the layout holds, and import-linter notices when it does not.

The contracts live in pyproject.toml (``[tool.importlinter]``); ``make lint`` runs them too.
The second test copies the packages, adds one import that climbs from the platform up into
the delivery path, and checks that the same contracts then fail and name that import, so a
contract that silently checks nothing cannot pass here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "inbound", "admin_api", "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(cwd / "pyproject.toml")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_every_layering_contract_is_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    assert result.stdout.count(" KEPT") >= 9


def test_an_import_from_the_platform_up_into_delivery_breaks_the_contracts(
    tmp_path: Path,
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    clock = tmp_path / "engine" / "platform" / "clock.py"
    clock.write_text(clock.read_text(encoding="utf-8")
                     + "\nimport engine.delivery._runner  # noqa\n", encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "engine: each stage imports only the stages below it BROKEN" in result.stdout
    assert "engine.platform is not allowed to import engine.delivery" in result.stdout
    assert "engine.platform.clock -> engine.delivery._runner" in result.stdout
    # A private module of delivery, imported from outside its package.
    assert "A module whose name starts with _ is used only inside its package BROKEN" in (
        result.stdout
    )


def test_no_test_package_is_named_like_a_project_package() -> None:
    # pytest puts tests/ first on sys.path: a test package called like one of the project's
    # would stand in for it, and a run of a few test files would import the wrong one.
    clashes = sorted(
        d.name for d in (ROOT / "tests").iterdir()
        if (d / "__init__.py").exists() and d.name in PACKAGES
    )
    assert clashes == []
