"""The Hessian-feature analysis's parameters, declared once. The write-up gives no numbers for its
optimiser; these defaults learn the toy models' features (XOR, TMS) in a few seconds on a CPU."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from featgeom_core.params import Params


class HessianParams(Params):
    """How k feature directions U are learned in one parameter block (the write-up's bi-level
    optimisation of the steepness and interference losses)."""

    k: int = Field(3, ge=1, le=4096, description="feature directions u to learn in the block (at most the block's size)")
    lambda_interference: float = Field(5.0, ge=0, le=1e6,
                                       description="weight lambda of the interference loss against the steepness loss (0: steepness only); dimensionless")
    steps: int = Field(300, ge=1, le=1_000_000, description="optimisation steps; each takes one batch of samples through both levels")
    learning_rate: float = Field(0.3, gt=0, le=10.0,
                                 description="first step size, as a fraction of the current L_steep per unit gradient; decays (cosine) to 5% of it")
    batch_size: int = Field(256, ge=1, le=1_000_000, description="samples per step, and per pass when curvatures are evaluated")
    restarts: int = Field(4, ge=1, le=256, description="starts optimised together as one batched problem; the best final objective is kept")
    init: Literal["eigenvectors", "random"] = Field(
        "eigenvectors", description="the first start: top-k eigenvectors of the batch-mean Hessian (matrix-free), or random like the others")
    init_iterations: int = Field(15, ge=1, le=1000, description="subspace-iteration rounds for the eigenvector start (2k Hessian-vector products each)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the starting directions and the batch order")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to compute: auto (CUDA when present), cpu or cuda")
    divergence: Literal["auto", "mse", "kl"] = Field(
        "auto", description="D: mse (regression, squared output units), kl (outputs are logits; nats, normalised to 0 at W0) or auto "
                            "(kl for models that declare featgeom_output = 'logits', mse otherwise)")
    positions: Literal["sum", "each"] = Field(
        "sum", description="outputs with positions (B, P, d): sum the positions' divergences per sample, or treat each sample-position as a sample")
    curvature: Literal["nested_jvp", "output_jvp"] = Field(
        "nested_jvp", description="how uᵀH(x)u is computed: nested_jvp (jvp of jvp of D) or output_jvp (one jvp of the outputs and D's "
                                  "closed-form second derivative in them; the same values, exact at W0, several times faster on deep models)")
    directions_per_pass: int = Field(64, ge=1, le=4096, description="directions evaluated at once (memory, not results)")
