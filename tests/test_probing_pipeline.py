"""The composed path (activations, probes, PSMs) with its cache."""

import time

import numpy as np

from featgeom_core.data import load_feature_set
from featgeom_core.probing import GeometryParams, feature_geometry


def test_probes_are_cached_per_layer(tiny_native, store) -> None:
    """The simplex story on MiniLM (real and shuffled-label probes at -1/2, the permuted control
    orthogonal) is the findings ledger's (thesis.simplex*, guarded in tests/test_findings.py)."""
    fs = load_feature_set("art_type", max_per_class=60)
    start = time.perf_counter()
    result = feature_geometry(tiny_native, fs, [0, 1], store=store)
    cold = time.perf_counter() - start
    assert result.test_accuracy.shape == (2, 3)
    start = time.perf_counter()
    warm = feature_geometry(tiny_native, fs, [0, 1], store=store)
    assert time.perf_counter() - start < 1.0 < cold + 1.0
    assert warm.cached_layers == (0, 1)
    np.testing.assert_array_equal(warm.psms[("rbf", "real")], result.psms[("rbf", "real")])
    only_first = feature_geometry(tiny_native, fs, [0], store=store)
    assert only_first.cached_layers == (0,)
    np.testing.assert_array_equal(only_first.directions["real"][0], result.directions["real"][0])


def test_dedup_and_exports(tiny_native, store) -> None:
    fs = load_feature_set("art_type", max_per_class=60)
    result = feature_geometry(tiny_native, fs, [0, 1], GeometryParams(rbf_c=50.0), store=store)
    kept, dropped = result.deduplicated(-1.0)  # everything duplicates the first feature
    assert kept == [[0], [0]] and len(dropped[0]) == 2
    kept, dropped = result.deduplicated(None)
    assert kept[0] == [0, 1, 2] and dropped[0] == []
    csv = result.psm_csv()
    assert csv.count("\n") == 1 + 2 * 3 * 2 * 9
    with np.load(__import__("io").BytesIO(result.directions_npz())) as npz:
        assert npz["directions_real"].shape == (2, 3, 256)
        assert "rbf_c" in str(npz["settings"])
