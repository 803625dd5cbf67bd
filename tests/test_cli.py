"""The featgeom command line: subcommands, exit codes, sweeps into the shared store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from featgeom_core.cli import expand_sweep
from featgeom_core.errors import FeatgeomError


def _run_cli(*args: str, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, FEATGEOM_CACHE_DIR=str(cache), FEATGEOM_LOCAL_WORKERS="2")
    env.pop("FEATGEOM_SCHEDULER", None)
    return subprocess.run([sys.executable, "-m", "featgeom_core", *args], capture_output=True, text=True, env=env, timeout=timeout)


Cli = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def featgeom() -> Cli:
    """``featgeom ARGS`` in a fresh process (a slow-tier fixture: each start imports torch)."""
    return _run_cli


def test_help_lists_the_subcommands(tmp_path: Path, featgeom: Cli) -> None:
    out = featgeom("--help", cache=tmp_path)
    assert out.returncode == 0
    for command in ("models", "feature-sets", "psm", "jobs", "sweep"):
        assert command in out.stdout


def test_models_and_feature_sets(tmp_path: Path, featgeom: Cli) -> None:
    models = featgeom("models", cache=tmp_path)
    assert models.returncode == 0 and "minilm" in models.stdout and "offline" in models.stdout
    sets = featgeom("feature-sets", cache=tmp_path)
    assert sets.returncode == 0 and "athlete_sport" in sets.stdout and "text_features" in sets.stdout


def test_psm_prints_per_layer_summaries_and_writes_csv(tmp_path: Path, featgeom: Cli) -> None:
    csv = tmp_path / "psms.csv"
    out = featgeom(
        "psm", "--model", "tiny-native", "--features", "art_type", "--layers", "0,1", "--csv", str(csv), "--quiet", cache=tmp_path
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"]
    assert csv.read_text().startswith("layer,similarity,control,feature_i,feature_j,value")


@pytest.mark.parametrize(
    "args,message",
    [
        (["psm", "--layers", "x"], "layers.0 = 'x': Input should be a valid integer"),
        (["psm", "--model", "nope", "--layers", "0"], "unknown model"),
        (["psm", "--model", "tiny-native", "--layers", "7", "--features", "art_type"], "out of range"),
        (["jobs", "status", "nope"], "no job"),
    ],
)
def test_failures_exit_nonzero_with_one_line(tmp_path: Path, args: list[str], message: str, featgeom: Cli) -> None:
    out = featgeom(*args, cache=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("featgeom: error:") and message in lines[-1]


def test_sweep_runs_a_grid_as_jobs_into_the_shared_store(tmp_path: Path, cluster_in_subprocess: None, featgeom: Cli) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "kind: feature_geometry\nparams:\n  model: tiny-native\n  layers: [0, 1]\ngrid:\n  feature_set: [art_type, athlete_sport]\n"
    )
    out = featgeom("sweep", str(sweep), cache=tmp_path, timeout=400)
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 2
    listing = featgeom("jobs", cache=tmp_path)
    assert listing.returncode == 0 and listing.stdout.count(" done ") == 2
    # the app reads the same store: the probes are cached for both feature sets
    from featgeom_core.data import load_feature_set
    from featgeom_core.models import load_model
    from featgeom_core.probing import GeometryParams, cached_layers
    from featgeom_core.store import Store

    model = load_model("tiny-native", device="cpu")
    for name in ("art_type", "athlete_sport"):
        fs = load_feature_set(name, tokenizer=model.tokenizer)
        assert cached_layers(model, fs, [0, 1], GeometryParams(), Store(tmp_path)) == [0, 1]


def test_invalid_sweep_submits_nothing(tmp_path: Path, featgeom: Cli) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("kind: feature_geometry\nparams: {model: tiny-native, layers: [0]}\ngrid:\n  feature_set: [art_type, nope]\n")
    out = featgeom("sweep", str(sweep), cache=tmp_path)
    assert out.returncode == 2 and "unknown feature set 'nope'" in out.stderr
    assert not (tmp_path / "jobs").exists()


def test_run_without_a_scheduler_runs_the_job_here_to_its_end(tmp_path: Path, featgeom: Cli) -> None:
    out = featgeom("run", "diagnostic.spin", "iterations=1000", "steps=3", "--json", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert "Traceback" not in out.stderr and "schedule new futures" not in out.stderr
    listing = featgeom("jobs", "status", printed["id"], cache=tmp_path)
    assert json.loads(listing.stdout)["status"] == "done"  # recorded like a submitted job, never left behind


def test_a_failing_job_prints_one_line_and_exits_1(tmp_path: Path, featgeom: Cli) -> None:
    out = featgeom("run", "feature_geometry", "model=tiny-native", "feature_set=art_type", "layers=[7]", cache=tmp_path)
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr and last.startswith("featgeom: job ") and " failed: " in last and "out of range" in last, (
        out.stderr
    )


def test_what_can_be_checked_at_submission_is(tmp_path: Path, featgeom: Cli) -> None:
    block = featgeom("run", "hessian.features", "model=xor", "block=nope", cache=tmp_path)
    assert block.returncode == 2 and "'nope' is not a parameter of the xor toy" in block.stderr and "Traceback" not in block.stderr
    layers = featgeom("psm", "--model", "tiny-native", "--layers", "1,1,1", cache=tmp_path)
    assert layers.returncode == 2 and "each value once; repeated: 1" in layers.stderr


def test_sweep_without_wait_needs_a_scheduler(tmp_path: Path, featgeom: Cli) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("kind: diagnostic.echo\nparams: {value: 1}\n")
    out = featgeom("sweep", str(sweep), "--no-wait", cache=tmp_path)
    assert out.returncode == 2 and "needs a Dask scheduler" in out.stderr
    assert not (tmp_path / "jobs").exists()


def test_expand_sweep_crosses_the_grid() -> None:
    kind, combos = expand_sweep({"kind": "k", "params": {"a": 1}, "grid": {"b": [1, 2], "c": ["x", "y", "z"]}})
    assert kind == "k" and len(combos) == 6 and combos[0] == {"a": 1, "b": 1, "c": "x"}
    with pytest.raises(FeatgeomError, match="non-empty lists"):
        expand_sweep({"kind": "k", "grid": {"b": 3}})
