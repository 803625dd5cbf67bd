"""The write-up's two toy models, trained here from a seed, with the samples to analyse.

- XOR: 2 inputs -> 2 GELU hidden units -> their sum; trained on the four points of XOR until it
  solves them (a seed that does not is retrained from the next derived seed).
- Toy model of superposition (Elhage et al. 2022, as in Anthropic's TMS): 5 features -> 2 hidden
  dimensions -> ReLU(Wᵀ W x + b), W_out = W_inᵀ; inputs uniform on [0, 1], each present with
  probability ``density``; trained until the columns of W form a regular polygon (a pentagon
  for 5 features in 2 dimensions).

Both are float64 modules (exact derivative checks) declaring ``featgeom_output = "regression"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from featgeom_core.errors import FeatgeomError, InvalidParameter

XOR_INPUTS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
XOR_TARGETS = (0.0, 1.0, 1.0, 0.0)
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class ToySpec:
    """What a toy is before it is trained: its name, a description, its parameters' shapes (the
    names a block can be made of) and its default block."""

    name: str
    description: str
    parameters: dict[str, tuple[int, ...]]
    default_block: tuple[str, ...]

    def block_size(self, names: tuple[str, ...] | list[str]) -> int:
        """Numbers in a block of these parameters."""
        return sum(math.prod(self.parameters[name]) for name in names)


TOYS: dict[str, ToySpec] = {
    "xor": ToySpec(
        "xor",
        "the XOR net (2 inputs, 2 GELU units, summed)",
        {"hidden.weight": (2, 2), "hidden.bias": (2,)},
        ("hidden.weight", "hidden.bias"),
    ),
    "tms": ToySpec("tms", "the toy model of superposition (5 features, 2 dims)", {"W": (2, 5), "b": (5,)}, ("W",)),
}
"""The toys by name (the shapes are those of :class:`XorNet` and ``ToySuperposition(5, 2)``)."""


@dataclass(frozen=True)
class HessianToy:
    """A trained toy model and the samples to analyse it on.

    ``inputs`` (n_samples, n_inputs), float64. ``blocks``: the parameter names a block can be
    made of; ``default_block``: the block analysed by default (XOR: all its weights and biases,
    since the write-up's XOR table gives [0, 0] non-zero activations, which only the biases can
    give; TMS: W). ``attempts``: trainings needed until the model solved its task.
    """

    name: str
    model: torch.nn.Module
    inputs: torch.Tensor
    blocks: tuple[str, ...]
    default_block: tuple[str, ...]
    description: str
    seed: int
    attempts: int = 1


class XorNet(torch.nn.Module):
    """y = Σ_i GELU(W x + b)_i: inputs (B, 2) -> outputs (B, 1)."""

    featgeom_output = "regression"

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(2, 2, dtype=torch.float64)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.randn(2, 2, generator=generator, dtype=torch.float64))
            self.hidden.bias.copy_(0.1 * torch.randn(2, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(self.hidden(x)).sum(dim=-1, keepdim=True)


class ToySuperposition(torch.nn.Module):
    """x' = ReLU(Wᵀ (W x) + b): inputs (B, n_features) -> outputs (B, n_features); W is
    (n_hidden, n_features), so W_out = W_inᵀ."""

    featgeom_output = "regression"

    def __init__(self, n_features: int, n_hidden: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        bound = math.sqrt(6.0 / (n_features + n_hidden))  # Xavier uniform, as Anthropic's notebook
        self.W = torch.nn.Parameter((2 * torch.rand(n_hidden, n_features, generator=generator, dtype=torch.float64) - 1) * bound)
        self.b = torch.nn.Parameter(torch.zeros(n_features, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x @ self.W.T) @ self.W + self.b)


def _derived_seed(seed: int, attempt: int) -> int:
    return (seed * 7919 + attempt * 104729) % (2**31 - 1)


def _train_xor(generator: torch.Generator, steps: int = 400) -> tuple[XorNet, float]:
    inputs = torch.tensor(XOR_INPUTS, dtype=torch.float64)
    targets = torch.tensor(XOR_TARGETS, dtype=torch.float64)[:, None]
    model = XorNet(generator)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = ((model(inputs) - targets) ** 2).mean()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        error = float((model(inputs) - targets).abs().max())
    return model, error


def xor_net(seed: int = 0, tolerance: float = 0.05) -> HessianToy:
    """The XOR net, trained from ``seed`` until every output is within ``tolerance`` of its
    target (retrained from derived seeds otherwise). Inputs: the four points (4, 2)."""
    if seed < 0:
        raise InvalidParameter(f"seed = {seed}: must be >= 0")
    for attempt in range(MAX_ATTEMPTS):
        model, error = _train_xor(torch.Generator().manual_seed(_derived_seed(seed, attempt)))
        if error < tolerance:
            model.eval()
            return HessianToy(
                name="xor",
                model=model,
                inputs=torch.tensor(XOR_INPUTS, dtype=torch.float64),
                blocks=tuple(TOYS["xor"].parameters),
                default_block=TOYS["xor"].default_block,
                seed=seed,
                attempts=attempt + 1,
                description=f"XOR net: 2 inputs -> 2 GELU units -> sum, trained on the 4 points (max error {error:.3g}); "
                f"divergence MSE; the write-up's features peak on [1,1], [0,1] and [1,0]",
            )
    raise FeatgeomError(f"the XOR net did not learn XOR within {MAX_ATTEMPTS} trainings from seed {seed}")


def sparse_features(n_samples: int, n_features: int, density: float, generator: torch.Generator, nonzero: bool = False) -> torch.Tensor:
    """TMS inputs (n_samples, n_features): each feature uniform on [0, 1] with probability
    ``density``, else 0. ``nonzero``: redraw samples with no feature present."""
    x = torch.rand(n_samples, n_features, generator=generator, dtype=torch.float64)
    x = x * (torch.rand(n_samples, n_features, generator=generator, dtype=torch.float64) < density)
    if nonzero:
        empty = (x == 0).all(dim=1)
        while empty.any():
            x[empty] = sparse_features(int(empty.sum()), n_features, density, generator)
            empty = (x == 0).all(dim=1)
    return x


def polygon_error(W: torch.Tensor) -> float:
    """How far the columns of W (2, n) are from a regular n-gon around the origin: the largest of
    |norm / mean norm - 1| and |gap between consecutive angles - 2π/n| / (2π/n); infinite when a
    column is shorter than half the mean (a feature left out). 0 for a perfect polygon."""
    norms = W.norm(dim=0)
    if float(norms.min()) < 0.5 * float(norms.mean()):
        return math.inf
    angles = torch.sort(torch.atan2(W[1], W[0])).values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi]))
    ideal = 2 * math.pi / W.shape[1]
    return float(max((norms / norms.mean() - 1).abs().max(), ((gaps - ideal).abs() / ideal).max()))


def _train_tms(
    n_features: int, n_hidden: int, density: float, generator: torch.Generator, steps: int, batch: int = 1024
) -> ToySuperposition:
    model = ToySuperposition(n_features, n_hidden, generator)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        x = sparse_features(batch, n_features, density, generator)
        optimiser.zero_grad()
        loss = ((model(x) - x) ** 2).sum(dim=1).mean()
        loss.backward()
        optimiser.step()
    return model


def toy_superposition(
    n_features: int = 5,
    n_hidden: int = 2,
    density: float = 0.05,
    seed: int = 0,
    *,
    n_samples: int = 1024,
    steps: int = 1000,
    tolerance: float = 0.1,
) -> HessianToy:
    """A toy model of superposition trained from ``seed``. With ``n_hidden`` = 2 it is retrained
    (from derived seeds) until its columns form a regular polygon within ``tolerance`` (see
    :func:`polygon_error`). Inputs: ``n_samples`` fresh samples from the training distribution
    with at least one feature present (samples with none have zero curvature), (n_samples,
    n_features)."""
    if not (2 <= n_features <= 1000 and 1 <= n_hidden <= n_features):
        raise InvalidParameter(
            f"n_features = {n_features}, n_hidden = {n_hidden}: need 2 <= n_features <= 1000 and 1 <= n_hidden <= n_features"
        )
    if not 0 < density <= 1:
        raise InvalidParameter(f"density = {density}: the probability that a feature is present must be in (0, 1]")
    if n_samples < 1 or seed < 0:
        raise InvalidParameter(f"n_samples = {n_samples}, seed = {seed}: need n_samples >= 1 and seed >= 0")
    for attempt in range(MAX_ATTEMPTS):
        generator = torch.Generator().manual_seed(_derived_seed(seed, attempt))
        model = _train_tms(n_features, n_hidden, density, generator, steps)
        error = polygon_error(model.W.detach()) if n_hidden == 2 else 0.0
        if error <= tolerance:
            model.eval()
            inputs = sparse_features(n_samples, n_features, density, generator, nonzero=True)
            shape = f"columns a regular {n_features}-gon within {error:.2f}" if n_hidden == 2 else "no shape check above 2 dimensions"
            return HessianToy(
                name="tms",
                model=model,
                inputs=inputs,
                blocks=tuple(TOYS["tms"].parameters),
                default_block=TOYS["tms"].default_block,
                seed=seed,
                attempts=attempt + 1,
                description=f"toy model of superposition: {n_features} features -> {n_hidden} dims -> ReLU(WᵀWx + b), density {density:g} "
                f"({shape}); divergence MSE; {n_samples} samples with at least one feature present",
            )
    raise FeatgeomError(
        f"the toy model of superposition did not form a regular {n_features}-gon within {MAX_ATTEMPTS} trainings from seed {seed}"
    )
