"""Security checks that hold for the whole code base: nothing is ever unpickled, the cache is
private to its owner, the server's protections are on, and the image runs as a non-root user."""

from __future__ import annotations

import ast
import stat
import tomllib
from pathlib import Path

import numpy as np

from conftest import REPO_ROOT
from featgeom_core.access import protect_store
from featgeom_core.jobs import records
from featgeom_core.jobs.records import JobRecord
from featgeom_core.store import Store

SOURCES = [
    REPO_ROOT / "app.py",
    *sorted((REPO_ROOT / "featgeom_core").rglob("*.py")),
    *sorted((REPO_ROOT / "ui").rglob("*.py")),
    *sorted((REPO_ROOT / "pages").rglob("*.py")),
]
FORBIDDEN_CALLS = {"pickle.load", "pickle.loads", "pd.read_pickle", "pandas.read_pickle", "joblib.load", "dill.load", "cloudpickle.load"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_nothing_in_the_code_unpickles() -> None:
    """No pickle-reading call anywhere; every torch.load has weights_only=True and every np.load
    allow_pickle=False (checked on the syntax tree, not by grepping text)."""
    problems = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            name, where = _name(node.func), f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
            if name in FORBIDDEN_CALLS:
                problems.append(f"{where}: {name}")
            if name.endswith("torch.load") and _keyword(node, "weights_only") is not True:
                problems.append(f"{where}: torch.load without weights_only=True")
            if name in {"np.load", "numpy.load"} and _keyword(node, "allow_pickle") is not False:
                problems.append(f"{where}: np.load without allow_pickle=False")
    assert not problems, problems
    assert len(SOURCES) > 50  # the scan saw the code base


def test_the_cache_directories_are_created_private(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / "cache"
    Store(root).put("ab" * 32, {"x": np.zeros(2)}, {})
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    jobs_root = tmp_path / "jobs-first"
    records.save(JobRecord(job_id="j", kind="k", params={}), jobs_root)
    assert stat.S_IMODE(jobs_root.stat().st_mode) == 0o700
    marked = tmp_path / "marked-first"
    protect_store(marked, "token")
    assert stat.S_IMODE(marked.stat().st_mode) == 0o700
    assert stat.S_IMODE((marked / "access.json").stat().st_mode) == 0o600


def test_the_servers_protections_are_on() -> None:
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] <= 50  # MB: uploads are capped
    assert config["client"]["showErrorDetails"] == "none"  # no traceback reaches a browser
    assert config["browser"]["gatherUsageStats"] is False


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [line.split()[1] for line in (REPO_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert users and all(user not in {"root", "0"} for user in users), users
