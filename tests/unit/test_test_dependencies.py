"""Every package the tests import is declared, so `pip install -e '.[test]'` is all a fresh
checkout (and CI) needs: a package that happens to be installed here must not hide a missing one."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"campaigns", "workers", "dashboard", "public_endpoints", "edm", "bench", "tests"}


def _imported_top_level_modules(folder: Path) -> dict[str, str]:
    """Third-party top-level modules imported under ``folder``, each with a file:line of one."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return {canonicalize_name(Requirement(line).name) for line in requirements}


def test_every_package_the_tests_import_is_declared_in_the_test_extra_or_the_dependencies() -> None:
    declared = _declared_distributions()
    distributions = packages_distributions()
    undeclared = [
        f"{where}: imports {module} (from {', '.join(distributions.get(module, ['?']))})"
        for module, where in _imported_top_level_modules(ROOT / "tests").items()
        if not declared & {canonicalize_name(name) for name in distributions.get(module, [])}
    ]
    assert undeclared == [], "add these to [project.optional-dependencies] test:\n" + "\n".join(
        undeclared
    )
