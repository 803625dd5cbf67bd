"""The dictionary step's inner loop, compiled: within a block of atoms, each atom moves in turn to
the minimiser along it, is renormalised, and its change is folded into the gradients of the block's
later atoms. The Python loop spent most of its time in per-atom call overhead (an outer product of
a few thousand numbers per atom)."""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a pinned dependency; the plain loop is the same algorithm

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        return lambda function: function


@njit(cache=True)
def move_block(  # pragma: no cover - compiled
    Dt: np.ndarray, gradient: np.ndarray, coupling: np.ndarray, atoms: np.ndarray, diagonal: np.ndarray
) -> None:
    """In place, exactly sequential: for each k, atom ``atoms[k]`` (a row of Dt (m, d), float64)
    goes to Dt[i] - gradient[k] / diagonal[i] on the unit sphere; ``gradient`` (block, d) is half the
    gradient of each block atom, ``coupling`` (block, block) the statistics A among them."""
    d = Dt.shape[1]
    u = np.empty(d)
    for k in range(len(atoms)):
        i = atoms[k]
        norm2 = 0.0
        for r in range(d):
            u[r] = Dt[i, r] - gradient[k, r] / diagonal[i]
            norm2 += u[r] * u[r]
        if norm2 == 0.0:
            continue
        scale = 1.0 / np.sqrt(norm2)
        for r in range(d):
            new = u[r] * scale
            u[r] = new - Dt[i, r]  # the change
            Dt[i, r] = new
        for j in range(k + 1, len(atoms)):
            c = coupling[k, j]
            if c != 0.0:
                for r in range(d):
                    gradient[j, r] += u[r] * c
