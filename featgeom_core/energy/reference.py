"""Reference configurations: N points on the unit sphere in R^dim minimising an energy, uniform weights."""

from __future__ import annotations

import numpy as np
import torch

from featgeom_core.config import resolve_device
from featgeom_core.energy.kernels import Kernel, kernel_index, pair_kernels
from featgeom_core.energy.params import validate_sizes
from featgeom_core.energy.result import MatchedReference, ReferenceResult
from featgeom_core.errors import InvalidParameter
from featgeom_core.lbfgs import batched_lbfgs
from featgeom_core.progress import Progress


def minimize_energy(
    n_points: int,
    dim: int,
    kernel: Kernel = "riesz",
    s: float = 1.0,
    restarts: int = 32,
    seed: int = 0,
    device: str = "auto",
    max_iter: int = 2000,
    progress: Progress | None = None,
) -> ReferenceResult:
    """All restarts as one batched L-BFGS problem in float64; returns the lowest-energy one."""
    validate_sizes(n_points, dim, allow_dim_at_least_n=True)
    index = kernel_index(kernel)
    if kernel == "riesz" and s == 0:
        raise InvalidParameter("Riesz s = 0 is the -log kernel: use kernel='log'")
    torch_device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    y0 = torch.randn(restarts, n_points * dim, generator=generator, dtype=torch.float64).to(torch_device)

    def on_sphere(y: torch.Tensor) -> torch.Tensor:
        X = y.reshape(-1, n_points, dim)
        return X / X.norm(dim=-1, keepdim=True)

    def objective(y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return pair_kernels(on_sphere(y), s)[index].sum((1, 2)) / 2

    result = batched_lbfgs(objective, y0, max_iter=max_iter, tol_grad=1e-12, progress=progress)
    energies = result.f.cpu().numpy()
    best = int(np.argmin(energies))
    return ReferenceResult(X=on_sphere(result.x)[best].cpu().numpy(), energy=float(energies[best]), energies=energies, kernel=kernel, s=s)


def matched_reference(
    target: np.ndarray,
    dim: int,
    kernel: Kernel = "riesz",
    s: float = 1.0,
    similarity: str = "cosine",
    restarts: int = 16,
    seed: int = 0,
    device: str = "auto",
    progress: Progress | None = None,
) -> MatchedReference:
    """The kernel's minimum-energy configuration for the target's N and ``dim``, its features
    permuted (``match_permutation``, FAQ) to sit beside the target feature by feature."""
    from featgeom_core.energy.matching import match_permutation

    target = np.asarray(target, dtype=np.float64)
    reference = minimize_energy(target.shape[0], dim, kernel, s=s, restarts=restarts, seed=seed, device=device, progress=progress)
    cosine = reference.X @ reference.X.T
    order = match_permutation(target, cosine)
    aligned = cosine[np.ix_(order, order)]
    distance = float(np.linalg.norm(aligned - target) / target.shape[0] ** 2) if similarity == "cosine" else float("nan")
    return MatchedReference(psm=aligned, distance=distance, reference=reference)
