"""PSMs, the permuted control and de-duplication."""

import numpy as np
import pytest

from featgeom_core.errors import FeatgeomError
from featgeom_core.probing import dedup, permuted_control, psm, psm_departure


@pytest.fixture
def directions() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(7, 50))


@pytest.mark.parametrize("kind", ["cosine", "rbf"])
def test_psm_is_symmetric_with_unit_diagonal(directions: np.ndarray, kind: str) -> None:
    matrix = psm(directions, kind)
    assert matrix.shape == (7, 7)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(matrix), 1.0)


def test_cosine_matches_definition(directions: np.ndarray) -> None:
    a, b = directions[0], directions[3]
    expected = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert psm(directions)[0, 3] == pytest.approx(expected)
    # cosine is scale-invariant per row
    scaled = directions * np.arange(1, 8)[:, None]
    np.testing.assert_allclose(psm(scaled), psm(directions), atol=1e-12)


def test_rbf_of_identical_vectors_is_one_and_decays_with_distance() -> None:
    X = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 12.0]])
    matrix = psm(X, "rbf", rbf_c=200.0)
    assert matrix[0, 1] == pytest.approx(1.0)
    assert matrix[0, 2] == pytest.approx(np.exp(-100.0 / 200.0))


def test_permuted_control_of_random_directions_is_uncorrelated() -> None:
    X = np.random.default_rng(1).normal(size=(40, 1536))
    X -= X.mean(axis=1, keepdims=True)
    control = permuted_control(X, seed=3)
    # each row is a permutation of itself: norms and values are kept
    np.testing.assert_allclose(np.sort(control, axis=1), np.sort(X, axis=1))
    off = ~np.eye(40, dtype=bool)
    assert abs(psm(control)[off].mean()) < 0.05


def test_permuted_control_destroys_shared_structure() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=1536)
    X = shared + 0.3 * rng.normal(size=(10, 1536))
    off = ~np.eye(10, dtype=bool)
    assert psm(X)[off].mean() > 0.8
    assert abs(psm(permuted_control(X, seed=0))[off].mean()) < 0.05


def test_dedup_keeps_first_of_near_duplicates() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(size=(4, 100))
    X = np.vstack([base, base[1] + 1e-3 * rng.normal(size=100), -base[2]])
    result = dedup(psm(X), threshold=0.95)
    assert result.kept == [0, 1, 2, 3, 5]  # the anti-parallel copy is not a duplicate
    assert [(a, b) for a, b, _ in result.dropped] == [(4, 1)]
    assert result.dropped[0][2] > 0.99


def test_psm_departure_is_zero_for_identical() -> None:
    m = psm(np.random.default_rng(5).normal(size=(5, 9)))
    assert psm_departure(m, m) == 0.0
    assert psm_departure(m, np.eye(5)) > 0


@pytest.mark.parametrize("bad", [np.full((3, 4), np.nan), np.zeros(5)])
def test_bad_directions_raise_a_featgeom_error(bad: np.ndarray) -> None:
    with pytest.raises(FeatgeomError):
        psm(bad)


def test_unknown_kind_raises() -> None:
    with pytest.raises(FeatgeomError, match="unknown similarity"):
        psm(np.eye(3), "euclid")  # type: ignore[arg-type]
