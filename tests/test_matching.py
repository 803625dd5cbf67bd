"""Permutation matching against planted permutations: never worse than sort_greedy, and exact
whenever the planted permutation is provably the optimum."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_core.energy import match_permutation, psm_distance
from featgeom_core.energy.matching import _cost, _swap_gains
from featgeom_core.errors import FeatgeomError
from featgeom_core.probing import psm

SIZES = (6, 12, 20, 40)
CASES_PER_SIZE = 260  # 1,040 planted cases in all


def planted_case(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """T: the cosine PSM of n random unit vectors in R^rank (rank 3-10); S: T with its features
    permuted by p (so S[p][:, p] = T before noise) plus symmetrised Gaussian noise of scale 0-0.1."""
    rank = int(rng.integers(3, 11))
    T = psm(rng.normal(size=(n, rank)))
    p = rng.permutation(n)
    S = np.empty_like(T)
    S[np.ix_(p, p)] = T
    scale = float(rng.choice([0.0, 0.001, 0.003, 0.01]) if rng.random() < 0.5 else rng.uniform(0.0, 0.1))
    noise = scale * rng.normal(size=T.shape)
    noise = (noise + noise.T) / 2
    return T, S + noise, p, noise


def planted_is_the_unique_optimum(T: np.ndarray, noise: np.ndarray) -> bool:
    """A certificate: every other order moves at least two rows, each costing at least g^2 with
    g = min over i != k of ||sort(T_i) - sort(T_k)|| (rearrangement inequality), so any other order
    costs >= sqrt(2) g - ||noise|| while the planted one costs ||noise||."""
    rows = np.sort(T, axis=1)
    gaps = np.linalg.norm(rows[:, None, :] - rows[None, :, :], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    return np.sqrt(2) * gaps.min() > 2 * np.linalg.norm(noise)


@pytest.mark.parametrize("n", SIZES)
def test_faq_is_never_worse_than_sort_greedy_and_recovers_certified_optima(n: int) -> None:
    rng = np.random.default_rng(n)
    certified = 0
    for _ in range(CASES_PER_SIZE):
        T, S, p, noise = planted_case(rng, n)
        faq = match_permutation(T, S, "faq")
        greedy = match_permutation(T, S, "sort_greedy")
        assert _cost(T, S, faq) <= _cost(T, S, greedy) + 1e-12
        if planted_is_the_unique_optimum(T, noise):
            certified += 1
            np.testing.assert_array_equal(faq, p)
    assert certified >= CASES_PER_SIZE // 4  # the certificate holds often enough to test recovery


def test_the_case_faq_alone_got_wrong_is_matched() -> None:
    """Issue 9's failure: N = 20, noise 0.02-0.05; FAQ's error was 4.8 against sort_greedy's 0.62."""
    rng = np.random.default_rng(0)
    for _ in range(74):
        T = psm(rng.normal(size=(20, 6)))
        p = rng.permutation(20)
        S = np.empty_like(T)
        S[np.ix_(p, p)] = T
        noise = rng.uniform(0.02, 0.05) * rng.normal(size=S.shape)
        S = S + (noise + noise.T) / 2
    assert np.sqrt(_cost(T, S, match_permutation(T, S, "faq"))) <= np.sqrt(_cost(T, S, match_permutation(T, S, "sort_greedy"))) < 1.0


def test_swap_gains_equal_the_cost_change_of_every_transposition() -> None:
    rng = np.random.default_rng(1)
    for n in (2, 3, 7):
        a, b = rng.normal(size=(n, n)), rng.normal(size=(n, n))
        T, S = a + a.T, b + b.T
        p = rng.permutation(n)
        gains = _swap_gains(T, S[np.ix_(p, p)])
        for i in range(n):
            for j in range(n):
                q = p.copy()
                q[i], q[j] = q[j], q[i]
                assert gains[i, j] == pytest.approx(_cost(T, S, q) - _cost(T, S, p), abs=1e-9)


def test_exact_matching_and_bad_input() -> None:
    rng = np.random.default_rng(2)
    T = psm(rng.normal(size=(7, 3)))
    p = rng.permutation(7)
    S = np.empty_like(T)
    S[np.ix_(p, p)] = T
    np.testing.assert_array_equal(match_permutation(T, S, "exact"), p)
    assert psm_distance(T, S) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(FeatgeomError, match="symmetric"):
        match_permutation(T, S + np.triu(np.ones_like(S), 1))
    with pytest.raises(FeatgeomError, match="unknown matching method"):
        match_permutation(T, S, "hungarian")  # type: ignore[arg-type]
