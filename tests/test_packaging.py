"""``pip install .`` gives a working featgeom: every third-party package the core, the CLI and the
app import is a declared dependency of pyproject.toml (a package that is only a transitive pin of
another would vanish with it)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from conftest import REPO_ROOT

OPTIONAL = {
    "sae_probes": "installed with --no-deps for its data files (its own dependencies pin TransformerLens < 4); read only when present",
}
"""Imports that are deliberately not dependencies, and why."""


def _top_level_imports() -> dict[str, str]:
    """{top-level module: a file importing it} over featgeom_core/, ui/, pages/ and app.py."""
    files = [
        *(REPO_ROOT / "featgeom_core").rglob("*.py"),
        *(REPO_ROOT / "ui").glob("*.py"),
        *(REPO_ROOT / "pages").glob("*.py"),
        REPO_ROOT / "app.py",
    ]
    found: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = {
        _normalised(re.split(r"[<>=~!\[; ]", spec, maxsplit=1)[0])
        for spec in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in sorted(_top_level_imports().items()):
        if module in sys.stdlib_module_names or module in {"featgeom_core", "ui", "pages", "__future__"} or module in OPTIONAL:
            continue
        providers = {_normalised(d) for d in distributions.get(module, [])}
        assert providers, f"{module} (imported by {where}) is not installed at all"
        if not providers & declared:
            missing[module] = (sorted(providers), where)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_console_script_is_declared() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"featgeom": "featgeom_core.cli:main"}
