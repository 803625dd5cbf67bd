"""Fourier labels for the modular-addition model's directions: a grokked model computes
(x + y) mod p with a few frequencies (Nanda et al. 2023), so a direction's activation over the p x p
grid of inputs is concentrated on one frequency pair (kx, ky), folded to 0..p//2."""

from __future__ import annotations

import numpy as np
import torch

from featgeom_core.interaction.graph import sequential_view
from featgeom_core.interaction.modadd import all_pairs
from featgeom_core.interaction.result import InteractionGraph


def fourier_labels(model, graph: InteractionGraph, modulus: int) -> list[list[dict[str, float]]]:
    """Per node layer, per direction: {"kx", "ky", "share"}, the frequency pair with the most power
    of the direction's activation over all p^2 inputs (constant term excluded) and its share of
    that power. Node layers with several positions are read at the first (a function of x alone)."""
    view = sequential_view(model, torch.float64, graph.node_layers)
    tokens = all_pairs(modulus)
    with torch.no_grad():
        acts = view.activations(tokens)
    labels = []
    for k, basis in enumerate(graph.bases):
        values = acts[k][:, 0 if acts[k].shape[1] > 1 else -1].to(torch.float64) @ basis.C.to(torch.float64)
        grid = values.numpy().reshape(modulus, modulus, -1)
        power = np.abs(np.fft.fft2(grid, axes=(0, 1))) ** 2
        power[0, 0] = 0.0
        # fold the negative frequencies onto 0..p//2 (a real signal's spectrum is symmetric), per axis
        fold = np.minimum(np.arange(modulus), modulus - np.arange(modulus))
        folded = np.zeros((modulus // 2 + 1, modulus // 2 + 1, grid.shape[-1]))
        np.add.at(folded, (fold[:, None], fold[None, :]), power)
        flat = folded.reshape(-1, grid.shape[-1])
        best = flat.argmax(0)
        totals = flat.sum(0)
        labels.append(
            [
                {
                    "kx": int(b // folded.shape[1]),
                    "ky": int(b % folded.shape[1]),
                    "share": float(flat[b, j] / totals[j]) if totals[j] > 0 else 0.0,
                }
                for j, b in enumerate(best)
            ]
        )
    return labels


def single_term_shares(model, graph: InteractionGraph, modulus: int, first: int = 10) -> list[list[float]]:
    """Per node layer, for its first ``first`` non-constant directions: the share of the direction's
    variance over all p^2 inputs that its largest single Fourier term explains (the paper's
    monosemanticity, section 3.1.2 and Appendix F: a term is a frequency pair (kx, ky) with its
    conjugate (-kx, -ky), so cos(kx x + ky y) and cos(kx x - ky y) are two terms, unlike the folded
    labels of :func:`fourier_labels`). Multi-position node layers are read at the first position."""
    view = sequential_view(model, torch.float64, graph.node_layers)
    tokens = all_pairs(modulus)
    with torch.no_grad():
        acts = view.activations(tokens)
    conjugate = (-np.arange(modulus)) % modulus
    shares = []
    for k, basis in enumerate(graph.bases):
        start = 1 if basis.constant_first else 0
        C = basis.C.to(torch.float64)[:, start : start + first]
        values = acts[k][:, 0 if acts[k].shape[1] > 1 else -1].to(torch.float64) @ C
        power = np.abs(np.fft.fft2(values.numpy().reshape(modulus, modulus, -1), axes=(0, 1))) ** 2
        power[0, 0] = 0.0  # the constant is not variance
        terms = power + power[conjugate][:, conjugate]  # (kx, ky) with (-kx, -ky): one real term
        totals = power.reshape(-1, power.shape[-1]).sum(0)
        best = terms.reshape(-1, terms.shape[-1]).max(0)
        shares.append([float(b / t) if t > 0 else 0.0 for b, t in zip(best, totals)])
    return shares
