"""Sparse coding (Deng, Tao and Benton 2023, section 2 and Appendix C): learn a dictionary Phi (d, m)
with unit columns and non-negative codes alpha minimising

    L(Phi; alpha) = (1/n) (||X - Phi alpha||^2 + lambda ||alpha||_1).

Alternate (a) minimising over Phi with the codes fixed, renormalising its columns, and (b) the
coefficient step: the paper's greedy step (``greedy``) or non-negative FISTA (the Yun et al. solver).
Each iteration codes a fresh minibatch: rows of a fixed X, or new activations drawn from a model
(the paper resamples activations every iteration when it can). Adaptive lambda: run, set
lambda = 0.1 * (the average largest coefficient), run again from the learned dictionary, until
lambda settles.

Step (a), which the paper leaves as "several steps of SGD", is block-coordinate descent on running
averages of the minibatch statistics alpha^T alpha and alpha^T X (Mairal et al.'s online dictionary
learning): each atom moves to the exact minimiser along it, so no step size needs tuning, and
plain gradient steps with one step size for atoms of very different usage overshoot on the
shared ones (tried: the loss rose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.progress import Progress, silent
from featgeom_core.sparsity.atoms import move_block
from featgeom_core.sparsity.greedy import add_code_statistics, greedy_codes
from featgeom_core.sparsity.params import SparseCodingParams
from featgeom_core.sparsity.result import SparseCode

Sampler = Callable[[np.random.Generator], np.ndarray]  # a fresh minibatch of activations (batch, d)


def check_activations(X: np.ndarray, what: str = "activations") -> np.ndarray:
    """X as float32 (n, d); refuses NaN/inf, an empty or all-zero set."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise DataError(f"{what} must be a 2-D array (samples, dimensions), got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise DataError(f"{what} contain NaN or infinite values in {bad} of {X.shape[0]} rows")
    X = X.astype(np.float32, copy=False)
    if not np.any(X.max(axis=0) > X.min(axis=0)):
        raise DataError(f"{what} are constant (every sample the same after centring): there is nothing to code")
    return X


def encode(X: np.ndarray, dictionary: np.ndarray, lam: float, params: SparseCodingParams) -> tuple[scipy.sparse.csr_array, np.ndarray]:
    """Codes (n, m) CSR of already-centred X (n, d) against ``dictionary`` (d, m), and the squared
    residual of every row (n,). Greedy or FISTA, as ``params.method`` says."""
    if params.method == "fista":
        from featgeom_core.sparsity.fista import fista_codes

        return fista_codes(X, dictionary, lam, params.fista_iterations, params.device)
    return greedy_codes(X, dictionary, lam, params.max_atoms)


def _dictionary_update(dictionary: np.ndarray, stats: _Statistics, sweeps: int, block: int = 64) -> np.ndarray:
    """The dictionary step with the codes fixed: ``sweeps`` sweeps of block-coordinate descent on the
    running-average objective, each atom in turn moved to the minimiser along it and brought back to
    unit norm (the paper's constraint); atoms no code uses keep their place.

    Exactly sequential, computed a block of atoms at a time: one matrix product gives the block's
    gradients (A is symmetric, so D A[:, block] is (A[block] D^T)^T), and each atom's change is
    folded into the gradients of the block's later atoms (:func:`.atoms.move_block`)."""
    A = stats.A
    Dt = np.ascontiguousarray(dictionary.T, dtype=np.float64)  # (m, d): one atom per row
    diagonal = np.ascontiguousarray(np.diag(A), dtype=np.float64)
    used = np.flatnonzero(diagonal > 1e-12 * max(float(diagonal.sum()), 1e-300))
    for _ in range(sweeps):
        Dt32 = Dt.astype(np.float32)  # the block products in A's precision (2x faster than float64); each move in float64
        for start in range(0, len(used), block):
            atoms = used[start : start + block]
            gradient = A[atoms] @ Dt32 - stats.Bt[atoms]  # (block, d): half the gradient of each atom (float32, as A)
            coupling = np.ascontiguousarray(A[np.ix_(atoms, atoms)], dtype=np.float64)
            move_block(Dt, np.ascontiguousarray(gradient, dtype=np.float64), coupling, atoms.astype(np.int64), diagonal)
            Dt32[atoms] = Dt[atoms]  # the block's moves, seen by the next block's gradients
    return np.ascontiguousarray(Dt.T, dtype=np.float32)


@dataclass
class _Statistics:
    """Running averages of alpha^T alpha (m, m) and alpha^T X (m, d) over minibatches, the sufficient
    statistics of the dictionary objective with the codes fixed; older minibatches fade."""

    A: np.ndarray
    Bt: np.ndarray
    seen: int = 0

    def update(self, X: np.ndarray, codes: scipy.sparse.csr_array, forgetting: float) -> None:
        """Fold in one minibatch: weight 1 for it, ``(seen / (seen + 1)) ** forgetting`` for the past."""
        if self.seen:
            keep = (self.seen / (self.seen + 1.0)) ** forgetting
            self.A *= keep
            self.Bt *= keep
        add_code_statistics(codes, X, 1.0 / X.shape[0], self.A, self.Bt)
        self.seen += 1


def _resample_atoms(
    dictionary: np.ndarray,
    stats: _Statistics,
    batch: np.ndarray,
    codes: scipy.sparse.csr_array,
    residual2: np.ndarray,
    duplicate_cosine: float,
) -> int:
    """In place: atoms no activation of the minibatch used, and the less used of two near-duplicate
    atoms (|cos| above ``duplicate_cosine``), move to the residuals of the worst-reconstructed
    activations, and their statistics restart. Two atoms on one feature leave another feature with
    none, and nothing in the alternation would move them apart. Returns how many atoms moved."""
    usage = np.bincount(codes.indices, minlength=dictionary.shape[1])
    cosines = np.abs(dictionary.T @ dictionary)
    np.fill_diagonal(cosines, 0.0)
    first, second = np.nonzero(np.triu(cosines > duplicate_cosine))
    duplicates = np.where(usage[first] < usage[second], first, second)
    stale = np.union1d(np.flatnonzero(usage == 0), duplicates)
    if not len(stale):
        return 0
    worst = np.argsort(-residual2)[: len(stale)]
    residuals = batch[worst] - codes[worst] @ dictionary.T
    norms = np.linalg.norm(residuals, axis=1)
    keep = norms > 0
    stale, residuals = stale[: int(keep.sum())], residuals[keep] / norms[keep, None]
    dictionary[:, stale] = residuals.T.astype(dictionary.dtype)
    stats.A[stale, :] = 0.0
    stats.A[:, stale] = 0.0
    stats.Bt[stale, :] = 0.0
    return len(stale)


def _initial_dictionary(first: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Atoms from data rows (with a little noise, so repeated rows give distinct atoms), unit norm."""
    rows = first[rng.integers(0, len(first), size=m)].astype(np.float64)
    rows += 0.01 * np.linalg.norm(rows, axis=1, keepdims=True).mean() / np.sqrt(first.shape[1]) * rng.normal(size=rows.shape)
    dictionary = rows.T
    return (dictionary / np.linalg.norm(dictionary, axis=0, keepdims=True)).astype(np.float32)


def average_max(codes: scipy.sparse.csr_array) -> float:
    """||alpha||_inf in the paper's sense: the largest coefficient of each sample, averaged."""
    if codes.nnz == 0:
        return 0.0
    return float(np.asarray(codes.max(axis=1).todense()).ravel().mean())


class DictionaryLearner:
    """The alternation of Appendix C, one minibatch at a time, with adaptive lambda.

    Feed it fresh minibatches (rows of a fixed X, or activations just drawn from a model) through
    :meth:`step` until :attr:`done`; several learners can run in lockstep on one stream (every
    layer of a model from the same forward passes). ``iterations(round)`` is the number of
    minibatches in that lambda round. The first lambda is a deliberately large guess
    (``lambda_guess`` x the average largest activation-atom correlation), which keeps the early
    codes sparse while the dictionary finds the features (with the paper's 0.1 from the start, the
    codes are dense and the dictionary stalls: tried); each round then sets lambda =
    ``lambda_ratio`` x the average largest coefficient of its last minibatch, until lambda settles.
    """

    def __init__(self, first: np.ndarray, params: SparseCodingParams, iterations: Callable[[int], int]) -> None:
        self.params = params
        self.iterations = iterations
        self.rng = np.random.default_rng(params.seed)
        d = first.shape[1]
        m = params.dictionary_atoms(d)
        params.check_memory(m)
        self.dictionary = _initial_dictionary(first, m, self.rng)
        self.lam = (
            params.initial_lambda if params.initial_lambda is not None else _lambda_guess(first, self.dictionary, params.lambda_guess)
        )
        self.lambdas: list[float] = [self.lam]
        self.losses: list[float] = []
        # float32 statistics: an (m, m) matrix per learner, and several learners run at once
        self.stats: _Statistics | None = _Statistics(A=np.zeros((m, m), dtype=np.float32), Bt=np.zeros((m, d), dtype=np.float32))
        self.round = 0
        self.step_in_round = 0
        self.done = False
        self.resampled = 0

    @property
    def planned(self) -> int:
        """Minibatches in all rounds at most (for progress)."""
        rounds = self.params.max_rounds if self.params.adaptive_lambda else 1
        return sum(self.iterations(r) for r in range(rounds))

    def step(self, batch: np.ndarray) -> str:
        """One iteration on a minibatch (batch, d) of centred activations; returns a progress line."""
        if self.done:
            return "done"
        codes, residual2 = encode(batch, self.dictionary, self.lam, self.params)
        if codes.nnz == 0:
            raise InvalidParameter(
                f"lambda = {self.lam:.4g} sets every coefficient to zero (no atom correlates with an activation by more than lambda/2 = "
                f"{self.lam / 2:.4g}); use a smaller lambda, e.g. {0.1 * _largest_correlation(batch, self.dictionary):.3g}"
            )
        self.losses.append(float((residual2.sum() + self.lam * codes.sum()) / len(batch)))
        assert self.stats is not None
        self.stats.update(batch, codes, self.params.forgetting)
        self.dictionary = _dictionary_update(self.dictionary, self.stats, self.params.dictionary_steps)
        if self.params.resample_atoms and (self.round == 0 or self.step_in_round < self.iterations(self.round) // 2):
            self.resampled += _resample_atoms(self.dictionary, self.stats, batch, codes, residual2, self.params.duplicate_cosine)
        line = (
            f"lambda round {self.round + 1}, iteration {self.step_in_round + 1}: lambda {self.lam:.3g}, loss {self.losses[-1]:.4g}, "
            f"{codes.nnz / len(batch):.1f} atoms per activation"
        )
        self.step_in_round += 1
        if self.step_in_round >= self.iterations(self.round):
            self._end_round(codes)
        return line

    def _end_round(self, codes: scipy.sparse.csr_array) -> None:
        if not self.params.adaptive_lambda:
            self._finish()
            return
        new_lam = self.params.lambda_ratio * average_max(codes)
        settled = abs(new_lam - self.lam) <= self.params.lambda_tolerance * self.lam
        self.lam = new_lam
        self.lambdas.append(new_lam)
        self.round += 1
        self.step_in_round = 0
        if settled or self.round >= self.params.max_rounds:
            self._finish()

    def _finish(self) -> None:
        self.done = True
        self.stats = None  # (m, m) statistics: no longer needed, and large


def _largest_correlation(X: np.ndarray, dictionary: np.ndarray) -> float:
    return float(np.max(X @ dictionary, axis=1).mean())


def _lambda_guess(X: np.ndarray, dictionary: np.ndarray, ratio: float) -> float:
    """A first lambda that scales with the data: ``ratio`` x the average largest correlation of an
    activation with an atom."""
    guess = ratio * _largest_correlation(X, dictionary)
    if not guess > 0:
        raise DataError("no atom correlates positively with the activations; the data may be degenerate")
    return guess


def sparse_code(X: np.ndarray, params: SparseCodingParams = SparseCodingParams(), progress: Progress | None = None) -> SparseCode:
    """Learn a dictionary for the rows of X (n, d) and code them (centred first when ``params.center``).

    Returns a :class:`SparseCode`: dictionary (d, m) with unit columns, codes (n, m), the final lambda.
    """
    X = check_activations(X)
    n, d = X.shape
    params.check_sizes(n, d)
    report = progress or silent
    center = X.mean(axis=0) if params.center else np.zeros(d, dtype=np.float32)
    data = X - center
    batch = min(params.batch_size, n)
    order: Iterator[np.ndarray] = minibatches(n, batch, np.random.default_rng(params.seed + 1))
    learner = DictionaryLearner(data[next(order)], params, params.iterations(n))
    done = 0
    while not learner.done:
        line = learner.step(data[next(order)])
        done += 1
        report(min(0.95, 0.95 * done / learner.planned), line)
    report(0.96, f"coding all {n} activations")
    codes, _ = encode(data, learner.dictionary, learner.lam, params)
    report(1.0, "done")
    return SparseCode(
        dictionary=learner.dictionary,
        codes=codes,
        lam=learner.lam,
        method=params.method,
        center=center.astype(np.float32),
        lambdas=learner.lambdas,
        losses=learner.losses,
    )


def minibatches(n: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row indices of minibatches of a fixed set of n rows, a fresh permutation each epoch."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch + 1, batch):
            yield order[start : start + batch]
