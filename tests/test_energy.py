"""The energy engine against ground truth: Thomson minima, regular shapes, fits, controls, traps."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_core.energy import (
    SweepGrid,
    best_configurations,
    energy,
    joint_optimize,
    match_permutation,
    minimize_energy,
    reoptimize,
    run_sweep,
)
from featgeom_core.errors import FeatgeomError
from featgeom_core.lbfgs import batched_lbfgs
from featgeom_core.probing import permuted_control, psm

THOMSON = {2: 0.5, 3: 1.732050808, 4: 3.674234614, 5: 6.474691495, 6: 9.985281374}
KERNELS = ("exp", "log", "riesz")


@pytest.mark.parametrize("n,expected", THOMSON.items())
def test_thomson_minima_on_the_two_sphere(n: int, expected: float) -> None:
    result = minimize_energy(n, 3, "riesz", s=1.0, restarts=16, seed=0)
    assert result.energy == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(np.linalg.norm(result.X, axis=1), 1.0, atol=1e-12)


def test_energy_counts_ordered_pairs_with_normalised_weights() -> None:
    result = minimize_energy(4, 3, "riesz")
    # uniform weights 1/N: sum over i != j = 2 / N^2 * sum over i < j
    assert energy(result.X, kernel="riesz") == pytest.approx(2 / 16 * THOMSON[4], rel=1e-6)


def _off(C: np.ndarray) -> np.ndarray:
    return C[~np.eye(len(C), dtype=bool)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_regular_polygon_in_two_dimensions(kernel: str) -> None:
    X = minimize_energy(7, 2, kernel).X
    angles = np.sort(np.arctan2(X[:, 1], X[:, 0]))
    gaps = np.diff(np.r_[angles, angles[0] + 2 * np.pi])
    np.testing.assert_allclose(gaps, 2 * np.pi / 7, atol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n", [3, 4, 5])
def test_simplex_for_n_equals_dim_plus_one(kernel: str, n: int) -> None:
    X = minimize_energy(n, n - 1, kernel).X
    np.testing.assert_allclose(_off(X @ X.T), -1 / (n - 1), atol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_cross_polytope_for_six_points_in_three_dimensions(kernel: str) -> None:
    X = minimize_energy(6, 3, kernel).X
    cosines = np.sort(X @ X.T, axis=1)
    np.testing.assert_allclose(cosines, np.tile([-1, 0, 0, 0, 0, 1], (6, 1)), atol=1e-5)


REFERENCE_SHAPES = [(7, 2), (4, 3), (6, 3)]  # polygon, simplex, octahedron


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n,dim", REFERENCE_SHAPES)
def test_reference_targets_are_fitted_and_survive_reoptimisation(kernel: str, n: int, dim: int) -> None:
    X = minimize_energy(n, dim, kernel).X
    target = X @ X.T
    joint = joint_optimize(target, dim, "cosine", kernel, lambda_d=100, restarts=8, weights="uniform")
    assert joint.error < 1e-4
    assert joint.features.shape == (n, dim) and joint.psm.shape == (n, n)
    again = reoptimize(joint, lambda_x=10, perturbation_scale=0.01, seed=1)
    assert again.distance < 1e-3


def test_permuted_control_ends_ten_times_further_than_a_real_energy_minimum() -> None:
    """The thesis's cosine finding: real geometry is an energy minimum, the control is not."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(8, 1000))
    control = psm(permuted_control(directions, seed=0))
    simplex = minimize_energy(8, 7, "riesz").X
    distances = {}
    for name, target in (("real", simplex @ simplex.T), ("control", control)):
        joint = joint_optimize(target, 7, "cosine", "riesz", lambda_d=100, restarts=8, weights="uniform")
        distances[name] = reoptimize(joint, lambda_x=10, perturbation_scale=0.01).distance
    assert distances["control"] > 10 * distances["real"]


def test_learned_weights_are_not_uniform_for_unequally_crowded_features() -> None:
    """Regression test against the published code, whose missing energy term left weights uniform."""
    rng = np.random.default_rng(3)
    hub = rng.normal(size=6)
    crowded = hub + 0.15 * rng.normal(size=(3, 6))
    spread = rng.normal(size=(3, 6))
    target = psm(np.vstack([crowded, spread]))
    joint = joint_optimize(target, 3, "cosine", "riesz", lambda_d=10, restarts=8, weight_ratio=10)
    assert joint.weights.max() / joint.weights.min() > 2
    assert joint.weights.max() / joint.weights.min() <= 10 + 1e-9  # bounded, as documented
    assert joint.weights[:3].mean() < joint.weights[3:].mean()  # crowded features weigh less
    assert joint.weights.sum() == pytest.approx(1.0)


def test_cosine_fits_keep_unit_norms_and_rbf_fits_are_anchored() -> None:
    X = minimize_energy(5, 2, "log").X
    cosine = joint_optimize(X @ X.T, 2, "cosine", "log", restarts=4)
    np.testing.assert_allclose(np.linalg.norm(cosine.features, axis=1), 1.0, atol=1e-9)
    rbf_target = psm(X, "rbf", rbf_c=1.0)
    rbf = joint_optimize(rbf_target, 2, "rbf", "log", lambda_d=1000, restarts=4, weights="uniform")
    assert np.isfinite(rbf.features).all() and np.linalg.norm(rbf.features, axis=1).max() < 10
    assert rbf.error < 1e-3


def test_a_joint_result_survives_the_store(tmp_path) -> None:
    from featgeom_core import codec
    from featgeom_core.energy import JointResult
    from featgeom_core.store import Store

    X = minimize_energy(5, 3, "log").X
    fitted = joint_optimize(X @ X.T, 2, "rbf", "exp", lambda_d=10, restarts=2, weights="learned", weight_ratio=5.0)
    store = Store(tmp_path)
    store.put("k" * 64, *codec.encode(fitted))
    again = store.get_result("k" * 64, JointResult, stale_as_missing=False)
    assert again.config == fitted.config and again.error == fitted.error
    np.testing.assert_array_equal(again.features, fitted.features)
    np.testing.assert_array_equal(again.trace, fitted.trace)


def test_results_are_seeded() -> None:
    X = minimize_energy(5, 2, "riesz").X
    a = joint_optimize(X @ X.T, 2, restarts=4, seed=3)
    b = joint_optimize(X @ X.T, 2, restarts=4, seed=3)
    np.testing.assert_array_equal(a.features, b.features)


def test_batched_lbfgs_solves_independent_quadratics() -> None:
    import torch

    scales = torch.tensor([1.0, 10.0, 1000.0], dtype=torch.float64)
    centres = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, 7.0]], dtype=torch.float64)
    result = batched_lbfgs(lambda x, rows: (scales[rows, None] * (x - centres[rows]) ** 2).sum(1), torch.zeros(3, 2, dtype=torch.float64))
    torch.testing.assert_close(result.x, centres)


def test_sweep_rows_and_best_configurations() -> None:
    X = minimize_energy(5, 4, "riesz").X
    targets = {"real": {"cosine": X @ X.T}, "permuted": {"cosine": psm(permuted_control(X, 0))}}
    grid = SweepGrid(
        kernels=("riesz", "log"), similarities=("cosine",), dims=(2, 4), lambda_d=(100.0,), lambda_x=(10.0,), sigmas=(0.01, 0.1)
    )
    rows = run_sweep(targets, grid, restarts=4, repeats=2).rows
    assert len(rows) == 2 * 2 * 2 * 1 * 2
    best = {(r["target"], r["kernel"]): r for r in best_configurations(rows)}
    assert best[("real", "riesz")]["dim"] == 4 and best[("real", "riesz")]["joint_error"] < 1e-4


def test_a_sweep_over_layers_of_different_sizes_picks_the_best_fit_per_layer() -> None:
    """Layers may keep different features after de-duplication, so N differs between them."""
    from featgeom_core.energy import SweepTarget

    simplex, octahedron = minimize_energy(5, 4, "riesz").X, minimize_energy(6, 3, "riesz").X
    targets = [
        SweepTarget("real", {"cosine": simplex @ simplex.T}, layer=0),
        SweepTarget("real", {"cosine": octahedron @ octahedron.T}, layer=1),
        SweepTarget("random", {"cosine": psm(np.random.default_rng(0).normal(size=(6, 200)))}, layer=1),
    ]
    grid = SweepGrid(kernels=("riesz",), similarities=("cosine",), dims=(2, 3, 4), lambda_d=(100.0,), lambda_x=(10.0,), sigmas=(0.01,))
    sweep = run_sweep(targets, grid, restarts=4, repeats=1)
    assert len(sweep.rows) == 3 * 3 and len(sweep.joints) == 9
    best = {(r["target"], r["layer"]): r for r in best_configurations(sweep.rows)}
    assert set(best) == {("real", 0), ("real", 1), ("random", 1)}
    assert best[("real", 0)]["dim"] == 4 and best[("real", 1)]["dim"] in (3, 4)
    for row in best.values():
        fit = sweep.joints[row["fit"]]
        assert (fit.config.dim, fit.error) == (row["dim"], row["joint_error"])
    assert best[("real", 1)]["joint_error"] < 1e-4 < best[("random", 1)]["joint_error"]


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: joint_optimize(np.eye(4), 4), "dim must be between"),
        (lambda: joint_optimize(np.eye(1), 1), "at least 2 features"),
        (lambda: joint_optimize(np.array([[1.0, 0.2], [0.5, 1.0]]), 1), "not symmetric"),
        (lambda: joint_optimize(np.full((3, 3), np.nan), 2), "NaN"),
        (lambda: joint_optimize(np.eye(3), 2, lambda_d=0), "lambda_d = 0"),
        (lambda: joint_optimize(np.eye(3), 2, kernel="gauss"), "kernel = .gauss. is not allowed"),
        (lambda: reoptimize(joint_optimize(np.eye(3), 2, restarts=1), lambda_x=-1), "lambda_x = -1"),
        (lambda: minimize_energy(1, 2), "at least 2"),
        (lambda: match_permutation(np.eye(9), np.eye(9), "exact"), "N = 9"),
    ],
)
def test_invalid_input_raises_a_featgeom_error(call, message: str) -> None:
    with pytest.raises(FeatgeomError, match=message):
        call()


def test_matched_reference_finds_a_shuffled_octahedron() -> None:
    from featgeom_core.energy import matched_reference

    X = minimize_energy(6, 3, "riesz").X
    order = np.random.default_rng(4).permutation(6)
    target = (X @ X.T)[np.ix_(order, order)]
    matched = matched_reference(target, 3, "riesz")
    assert matched.distance < 1e-8
    np.testing.assert_allclose(matched.psm, target, atol=1e-6)
    assert np.isnan(matched_reference(target, 3, "riesz", similarity="rbf").distance)


def test_curves_of_best_use_the_real_targets_best_configuration_for_both_targets() -> None:
    from featgeom_core.energy import curves_of_best

    X = minimize_energy(5, 4, "riesz").X
    targets = {"real": {"cosine": X @ X.T}, "permuted": {"cosine": psm(permuted_control(X, 0))}}
    grid = SweepGrid(kernels=("riesz",), similarities=("cosine",), dims=(2, 4), lambda_d=(100.0,), lambda_x=(10.0,), sigmas=(0.01, 0.1))
    rows = run_sweep(targets, grid, restarts=4, repeats=1).rows
    curves = curves_of_best(rows, "cosine")
    assert {(r["target"], r["sigma"]) for r in curves} == {(t, s) for t in ("real", "permuted") for s in (0.01, 0.1)}
    assert {r["dim"] for r in curves} == {4}  # the simplex target is fitted exactly only in 4 dims


def test_a_fits_equally_good_minima_are_copies_of_one_configuration_and_start_the_draws_in_turn() -> None:
    """A cosine fit of a regular pentagon in 2 dimensions: every restart ends at the pentagon,
    rotated or reflected (the objective sees neither), so all are equally good minima with the
    same PSM; the best comes first and re-optimisation draws cycle through them."""
    from featgeom_core.energy.joint import EQUAL_OBJECTIVE, equal_minima

    X = minimize_energy(5, 2, "riesz").X
    fit = joint_optimize(X @ X.T, 2, "cosine", "riesz", lambda_d=100, restarts=6, weights="uniform")
    assert len(fit.minima) == 6 and fit.minima.shape == (6, 5, 2)
    np.testing.assert_array_equal(fit.minima[0], fit.features)
    assert np.ptp(fit.objectives) <= EQUAL_OBJECTIVE * abs(fit.objective)
    for features in fit.minima:
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        np.testing.assert_allclose(unit @ unit.T, fit.psm, atol=1e-5)
    assert not np.allclose(fit.minima[1], fit.minima[0], atol=1e-3)  # another copy, not the same point
    np.testing.assert_array_equal(fit.from_minimum(7).features, fit.minima[1])
    assert fit.from_minimum(6) is fit
    np.testing.assert_array_equal(equal_minima(np.array([3.0, 1.0, 1.0 + 1e-9, 2.0])), [1, 2])


def test_the_real_target_gets_its_own_number_of_draws_and_the_controls_keep_theirs() -> None:
    X = minimize_energy(5, 4, "riesz").X
    targets = {"real": {"rbf": psm(X, "rbf")}, "permuted": {"rbf": psm(permuted_control(X, 0), "rbf")}}
    grid = SweepGrid(kernels=("exp",), similarities=("rbf",), dims=(2,), lambda_d=(100.0,), lambda_x=(10.0,), sigmas=(0.01,))
    rows = run_sweep(targets, grid, restarts=4, repeats=2, real_draws=5).rows
    draws = {row["target"]: len(row["distances"]) for row in rows}
    assert draws == {"real": 5, "permuted": 2}
