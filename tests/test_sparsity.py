"""Sparse coding and the sparsity metrics against ground truth: the plain greedy loop, planted
dictionaries, the paper's synthetic validation, scale invariance, KKT conditions, bad input."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.sparsity import (
    SparseCodingParams,
    control_data,
    greedy_codes,
    greedy_reference,
    sparse_code,
    sparse_linear_data,
    sparsity_metrics,
)
from featgeom_core.sparsity.coding import encode
from featgeom_core.sparsity.data import unit_mean_norm
from featgeom_core.sparsity.result import SparseCode

SMALL = SparseCodingParams(epochs=2.0, later_epochs=1.0, batch_size=512)


@pytest.mark.parametrize("n,d,m,lam", [(60, 16, 40, 0.3), (40, 8, 64, 0.05), (30, 32, 32, 1.0)])
def test_greedy_step_equals_the_plain_per_column_loop(n: int, d: int, m: int, lam: float) -> None:
    rng = np.random.default_rng(n + m)
    X = rng.normal(size=(n, d))
    Phi = rng.normal(size=(d, m))
    Phi /= np.linalg.norm(Phi, axis=0)
    reference = greedy_reference(X, Phi, lam, max_atoms=m)
    codes, residual2 = greedy_codes(X, Phi, lam, dtype=np.float64)
    np.testing.assert_array_equal(codes.toarray() > 0, reference > 0)  # the same atoms, in every column
    np.testing.assert_allclose(codes.toarray(), reference, atol=1e-12)
    np.testing.assert_allclose(residual2, np.sum((X - reference @ Phi.T) ** 2, axis=1), rtol=1e-10)
    capped, _ = greedy_codes(X, Phi, lam, max_atoms=2, dtype=np.float64)
    np.testing.assert_allclose(capped.toarray(), greedy_reference(X, Phi, lam, max_atoms=2), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_noiseless_dictionary_is_recovered(seed: int) -> None:
    """Noiseless, a = 3, m = the number of true features (2d in d = 64): every true feature has an atom
    within 8 degrees. (At 4d true features the greedy step's cross-talk leaves a few of 512 without one.)"""
    d, a = 64, 3.0
    planted: dict = {}
    X, truth = sparse_linear_data(d, a, 8192, sigma=0.0, n_features=2 * d, seed=seed, planted=planted)
    code = sparse_code(X, SparseCodingParams(dictionary_multiple=2.0, epochs=6.0, later_epochs=2.0, batch_size=1024))
    cosines = np.abs(planted["features"] @ code.dictionary)  # (true features, atoms)
    assert truth == a / 2
    assert cosines.max(axis=1).min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(code.dictionary, axis=0), 1.0, rtol=1e-5)


@pytest.mark.parametrize("scale", [8.0, 0.125])
def test_the_coder_is_exactly_scale_equivariant(scale: float) -> None:
    """Scaling X by a power of two changes no rounding anywhere, so a scale-equivariant coder (its
    lambda adapts to the data, no absolute tolerance anywhere) gives bit-identical metrics and a
    loss scaled by scale^2. (Another factor, e.g. 7, rounds differently in float32, and the
    non-convex dictionary updates carry that 1e-7 difference to about 1e-4 in the metrics: that
    is rounding, not the invariance the paper claims, which the next test checks.)"""
    X, _ = sparse_linear_data(24, 4.0, 2048, seed=1)
    base = sparsity_metrics(sparse_code(X, SMALL), X)
    scaled = sparsity_metrics(sparse_code(scale * X, SMALL), scale * X)
    for name in ("s_p", "normalized_loss", "explained_variance", "n0"):
        assert scaled[name] == base[name], name
    assert scaled["average_max"] == scale * base["average_max"] and scaled["final_loss"] == scale**2 * base["final_loss"]


def test_the_metrics_are_scale_invariant_where_the_paper_says() -> None:
    """Section 3: normalized loss, S_p and explained variance do not change when activations and
    their code scale together (by any factor); the loss scales by its square."""
    X, _ = sparse_linear_data(24, 4.0, 2048, seed=1)
    code = sparse_code(X, SMALL)
    base = sparsity_metrics(code, X)
    scaled_code = dataclasses.replace(code, codes=code.codes * 7.0, center=code.center * 7.0, lam=code.lam * 7.0)
    scaled = sparsity_metrics(scaled_code, 7.0 * X)
    for name in ("s_p", "normalized_loss", "explained_variance", "n0"):
        assert scaled[name] == pytest.approx(base[name], rel=1e-6), name
    assert scaled["final_loss"] == pytest.approx(49.0 * base["final_loss"], rel=1e-6)


def test_metric_definitions_on_a_hand_made_code() -> None:
    """Two activations, one atom each or two: N0, S1, S2, L, L_norm by hand."""
    import scipy.sparse

    dictionary = np.eye(3, dtype=np.float32)
    codes = scipy.sparse.csr_array(np.asarray([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=np.float32))
    code = SparseCode(dictionary=dictionary, codes=codes, lam=0.5, method="greedy", center=np.zeros(3, dtype=np.float32))
    X = np.asarray([[2.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    metrics = sparsity_metrics(code, X, p=2.0)
    assert metrics["n0"] == 1.5 and metrics["average_max"] == 1.5
    assert metrics["s_p"] == pytest.approx((4 + 1 + 1) / 2 / 1.5**2)  # mean sum alpha^2 over (mean max)^2
    assert metrics["final_loss"] == pytest.approx((1.0 + 0.5 * 4) / 2)  # residual 1 (the third coordinate), lambda ||alpha||_1 = 0.5 * 4
    assert metrics["normalized_loss"] == pytest.approx(1.5 / (0.5 * 1.5))
    assert metrics["dead_atoms"] == 1 and metrics["always_on_atoms"] == 1


def test_fista_codes_satisfy_the_non_negative_lasso_optimality_conditions() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 12)).astype(np.float32)
    Phi = rng.normal(size=(12, 30)).astype(np.float32)
    Phi /= np.linalg.norm(Phi, axis=0)
    lam = 0.4
    codes, residual2 = encode(X, Phi, lam, SparseCodingParams(method="fista", fista_iterations=5000, device="cpu"))
    alpha = codes.toarray().astype(np.float64)
    gradient = 2 * (alpha @ (Phi.T @ Phi) - X @ Phi) + lam  # d/d alpha of ||x - Phi alpha||^2 + lam sum alpha
    assert np.all(alpha >= 0)
    assert np.abs(gradient[alpha > 1e-6]).max() < 2e-3  # active: stationary
    assert gradient[alpha <= 1e-6].min() > -2e-3  # inactive: no descent direction into alpha > 0
    np.testing.assert_allclose(residual2, np.sum((X - alpha @ Phi.T) ** 2, axis=1), rtol=1e-3)


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda: SparseCodingParams(dictionary_multiple=0.5), InvalidParameter, "dictionary_multiple = 0.5"),
        (lambda: sparse_linear_data(16, 64, 100), InvalidParameter, "a .features active on average. must be in"),
        (lambda: sparse_linear_data(16, 0, 100), InvalidParameter, "must be in"),
        (lambda: sparse_linear_data(16, 2, 100, sigma=-1), InvalidParameter, "sigma must be >= 0"),
        (
            lambda: sparse_code(np.random.default_rng(0).normal(size=(100, 16)), SparseCodingParams()),
            DataError,
            "too few for a dictionary of 128",
        ),
        (lambda: sparse_code(np.full((300, 8), np.nan), SMALL), DataError, "NaN or infinite values in 300 of 300 rows"),
        (lambda: sparse_code(np.zeros((300, 8)), SMALL), DataError, "constant"),
        (
            lambda: sparse_code(
                control_data("gaussian", 8, 300), SparseCodingParams(initial_lambda=1e3, adaptive_lambda=False, batch_size=64)
            ),
            InvalidParameter,
            "sets every coefficient to zero.*use a smaller lambda",
        ),
        (lambda: control_data("uniform", 8, 10), InvalidParameter, "unknown control"),
    ],
)
def test_bad_input_gets_a_clear_error(make, error, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_controls_have_identity_covariance_and_unit_mean_norm_scaling() -> None:
    for kind in ("gaussian", "heavy_tailed", "rademacher"):
        X = control_data(kind, 16, 20000, seed=3).astype(np.float64)
        covariance = np.cov(X.T)
        assert np.trace(covariance) / 16 == pytest.approx(1.0, rel=0.05), kind
    scaled = unit_mean_norm(control_data("heavy_tailed", 16, 500))
    assert np.mean(np.linalg.norm(scaled, axis=1)) == pytest.approx(1.0, rel=1e-5)
    assert np.abs(scaled.mean(axis=0)).max() < 1e-6


def test_appendix_h_decomposes_with_the_largest_halving_of_lambda_that_explains_98_percent() -> None:
    from featgeom_core.sparsity.model import decomposition_lambda
    from featgeom_core.sparsity.params import ModelSparsityParams

    d = 32
    planted: dict = {}
    X, _ = sparse_linear_data(d, 4.0, 2048, sigma=0.05, n_features=4 * d, seed=3, planted=planted)
    X = X - X.mean(axis=0)
    dictionary = planted["features"].T.astype(np.float32)  # (d, m): the true features as the dictionary
    params = ModelSparsityParams(recipe="appendix_h")
    coding = params.effective_coding()
    assert coding.dictionary_multiple == 16 and not coding.adaptive_lambda and coding.initial_lambda == 0.1

    def explained(lam: float) -> float:
        _, residual2 = encode(X, dictionary, lam, coding)
        return 1 - float(residual2.sum()) / float(np.sum(X.astype(np.float64) ** 2))

    lam = decomposition_lambda(X, dictionary, params)
    assert explained(lam) >= 0.98
    assert lam == 0.1 or explained(2 * lam) < 0.98  # the largest on the ladder 0.1 x 2^-k
    assert decomposition_lambda(X, dictionary, ModelSparsityParams(recipe="appendix_h", decomposition_lambda=0.003)) == 0.003


def test_a_deep_model_is_measured_at_evenly_spaced_layers_by_default() -> None:
    from featgeom_core.sparsity.params import ModelSparsityParams

    assert ModelSparsityParams().chosen_layers(6) == [0, 1, 2, 3, 4, 5]
    assert ModelSparsityParams().chosen_layers(30) == [0, 4, 8, 12, 17, 21, 25, 29]
    assert ModelSparsityParams(layers=[3, 1]).chosen_layers(30) == [1, 3]
    # fields added later leave old job ids alone while at their defaults
    assert "recipe" not in ModelSparsityParams().normalised() and ModelSparsityParams(recipe="appendix_h").normalised()["recipe"]


def test_the_sparsity_by_layer_estimate_matches_the_two_measured_runs() -> None:
    """The page's 'how long' comes from two measured runs (RESULTS.md): it must give them back."""
    from featgeom_core.sparsity.estimate import estimated_seconds, say_duration
    from featgeom_core.sparsity.params import ModelSparsityParams

    minilm = estimated_seconds(ModelSparsityParams(model="minilm"), 384, 6)
    smollm2 = estimated_seconds(ModelSparsityParams(model="smollm2"), 576, 30)
    assert minilm == pytest.approx(271, rel=0.05) and smollm2 == pytest.approx(745, rel=0.1)
    assert smollm2 - estimated_seconds(ModelSparsityParams(model="smollm2"), 576, 30, calibration_stored=True) == pytest.approx(
        240 * 271 / 185, rel=0.25
    )  # SmolLM2's calibration, 240 s on the machine where MiniLM's defaults took 185 s
    # one layer, 4,096 tokens: 20.8 s there, 7.1 s with the calibration stored (x 271 / 185 for the reference machine)
    small = ModelSparsityParams(model="minilm", tokens=4096, embeddings=False, layers=[1])
    assert estimated_seconds(small, 384, 6) == pytest.approx(20.8 * 271 / 185, rel=0.25)
    assert estimated_seconds(small, 384, 6, calibration_stored=True) < 15
    assert say_duration(40) == "about 40 s" and say_duration(745) == "about 12 min" and say_duration(7200) == "about 2.0 h"


def test_a_models_calibration_is_stored_once_and_shared_by_another_layer_choice(store) -> None:
    """The synthetic calibration depends on the width, tokens, coding and seed, not on the model or
    its layers: the first job stores it as the validation grid's result, the next reuses it."""
    from featgeom_core.progress import silent
    from featgeom_core.sparsity.jobs import SPARSITY_MODEL, SPARSITY_SYNTHETIC
    from featgeom_core.sparsity.run import calibration_grid, run_model

    first = SPARSITY_MODEL.parse(SPARSITY_MODEL.example)
    output = run_model(first, silent, store)
    (entry,) = output.extra
    store.put(*entry)
    (d,) = {s.code.dictionary.shape[0] for s in output.result.sets}
    grid = calibration_grid(d, first)
    stored = SPARSITY_SYNTHETIC.cached(grid, store)
    assert stored is not None and stored.rows == output.result.calibration
    assert [row["dataset"] for row in stored.rows] == ["sparse_linear"] * len(first.calibration_a) + ["gaussian"]
    assert [row["a"] for row in stored.rows[:-1]] == first.calibration_a and {row["d"] for row in stored.rows} == {d}

    other_layer = SPARSITY_MODEL.parse({**SPARSITY_MODEL.example, "layers": [1]})
    again = run_model(other_layer, silent, store)
    assert again.extra == () and again.result.calibration == output.result.calibration
    assert all(s.calibrated_a is None or s.calibrated_a > 0 for s in again.result.sets)


def test_held_out_activations_wait_on_disk_while_the_dictionaries_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """The held-out set is spilled before training starts and coded from the file afterwards: what
    ``spill`` hands back equals what it was given, is read-only, and is what every layer is coded from."""
    import featgeom_core.sparsity.model as model_module
    from featgeom_core.memory import spill
    from featgeom_core.models import shared_model
    from featgeom_core.sparsity.params import ModelSparsityParams

    values = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        back = spill(values, Path(folder), "x")
        assert isinstance(back, np.memmap) and not back.flags.writeable and np.array_equal(back, values)
        del back
    spilled: dict[str, np.ndarray] = {}
    coded: list[bool] = []

    def recording_spill(array: np.ndarray, folder: Path, name: str) -> np.ndarray:
        spilled[name] = np.array(array)
        return spill(array, folder, name)

    finish = model_module._finish

    def checking_finish(name, learner, data, center, params):
        coded.append(isinstance(data, np.memmap) and np.array_equal(data, spilled[name.replace(" ", "")]))
        return finish(name, learner, data, center, params)

    monkeypatch.setattr(model_module, "spill", recording_spill)
    monkeypatch.setattr(model_module, "_finish", checking_finish)
    params = ModelSparsityParams(model="tiny-native", layers=[0, 1], tokens=512, calibrate=False, embeddings=False, max_tokens_per_text=32)
    result = model_module.model_sparsity(shared_model("tiny-native"), params)
    assert sorted(spilled) == ["layer0", "layer1"] and coded == [True, True]
    assert [s.name for s in result.sets] == ["layer 0", "layer 1"]
