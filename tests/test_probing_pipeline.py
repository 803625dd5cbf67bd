"""The composed path on the real default model, with its cache."""

import time

import numpy as np

from featgeom_core.data import load_feature_set
from featgeom_core.probing import GeometryParams, feature_geometry


def test_athlete_sport_on_minilm_matches_the_simplex_story(minilm, store) -> None:
    fs = load_feature_set("athlete_sport", max_per_class=300)
    start = time.perf_counter()
    result = feature_geometry(minilm, fs, [0, 3], store=store)
    cold = time.perf_counter() - start
    off = ~np.eye(3, dtype=bool)
    for i in range(2):
        real = result.psms[("cosine", "real")][i][off].mean()
        shuffled = result.psms[("cosine", "shuffled_labels")][i][off].mean()
        permuted = result.psms[("cosine", "permuted")][i][off].mean()
        assert -0.5 < real < -0.4 and -0.5 < shuffled < -0.4  # both near the K=3 simplex, -1/2
        assert abs(permuted) < 0.1  # the permuted control cannot show that baseline
    assert result.test_accuracy.shape == (2, 3) and (result.test_accuracy > 0.45).all()
    assert (np.abs(result.shuffled_test_accuracy - 0.5) < 0.2).all()

    start = time.perf_counter()
    warm = feature_geometry(minilm, fs, [0, 3], store=store)
    assert time.perf_counter() - start < 1.0 < cold + 1.0
    assert warm.cached_layers == (0, 3)
    np.testing.assert_array_equal(warm.psms[("rbf", "real")], result.psms[("rbf", "real")])

    extended = feature_geometry(minilm, fs, [0, 3, 5], store=store)
    assert extended.cached_layers == (0, 3)
    np.testing.assert_array_equal(extended.directions["real"][:2], result.directions["real"])


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
