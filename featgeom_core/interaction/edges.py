"""Interaction edges between consecutive node layers (the paper's eq. 3.14, squared form).

In LIB coordinates f_hat = f @ C, the section reads ``f_out_hat = F(f_in_hat @ C_in_pinv) @ C_out``.
For every sample b, output position t and directions (i, j):

    J_hat[b, t, i, j] = sum_alpha w_alpha sum_s d f_out_hat[b, t, i] / d f_in_hat[b, s, j] (alpha f_in_hat) * f_in_hat[b, s, j]

(attribution times activation, summed over input positions, then squared), and

    E[i, j] = sum_{b, t} J_hat^2 / (input positions x samples [x sources]).

With stochastic sources the sum over t happens inside the covector (+-1 per position) and the
squares average to the same E. E >= 0; row i is an output direction, column j an input one.
"""

from __future__ import annotations

import torch

from featgeom_core.interaction.jacobians import (
    RowPlan,
    check_finite,
    closed_form_attribution_squares,
    closed_form_total,
    pullbacks,
    section_maps,
)
from featgeom_core.interaction.sequential import Section
from featgeom_core.progress import Progress


def interaction_edges(
    section: Section,
    batches: list[torch.Tensor],
    C_in: torch.Tensor,
    C_in_pinv: torch.Tensor,
    C_out: torch.Tensor,
    points: list[tuple[float, float]],
    sources: int | None,
    seed: int,
    n_samples: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """E (n_out, n_in), float64, from the input node layer's activations ``batches`` (each
    (B, S, d_in)) and the two bases."""
    generator = torch.Generator().manual_seed(seed)
    maps = section_maps(section, C_in_pinv, C_out)

    def section_hat(f_hat: torch.Tensor) -> torch.Tensor:
        # C_in_pinv @ linear_in and linear_out @ C_out contracted once (maps.A, maps.G), not per pass
        assert maps.A is not None and maps.G is not None  # both bases are given, so both maps exist
        pre = f_hat @ maps.A
        return (pre if maps.core is None else maps.core(pre)) @ maps.G

    E = torch.zeros(C_out.shape[1], C_in.shape[1], dtype=torch.float64)
    n_positions = batches[0].shape[1]
    if maps.closed_form:  # exact over output positions, no sources needed
        E = closed_form_total(maps, batches, closed_form_attribution_squares, points, "edges", progress, lambda x: x @ C_in)
        E /= n_positions * n_samples
        check_finite(E, "the edges")
        return E
    for k, x in enumerate(batches):
        f_hat = x @ C_in
        with torch.no_grad():
            n_out_positions = section_hat(f_hat[:1]).shape[1]
        plan = RowPlan(n_out_positions, C_out.shape[1], sources if (sources and n_out_positions > 1) else None)
        for start, stop, grads in pullbacks(section_hat, f_hat, plan, points, generator):
            attribution = (grads * f_hat).sum(2)  # (rows, B, n_in): summed over input positions
            E.index_add_(0, plan.out_dims(start, stop), attribution.pow(2).sum(1).to(torch.float64))
        if progress:
            progress((k + 1) / len(batches), f"edges: batch {k + 1}/{len(batches)}")
    E /= n_positions * n_samples * plan.normaliser
    check_finite(E, "the edges")
    return E
