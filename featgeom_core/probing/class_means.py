"""A second estimator of feature directions: class means in whitened activations (Park et al. 2024).

The thesis's one-vs-rest logistic probes are pulled onto a simplex by their construction: with
balanced classes the K class-mean differences sum to zero, so their directions sit near cosines of
-1/(K-1) whatever the model knows (the shuffled-label control shows it). Park, Choe, Jiang and
Veitch (2024) estimate a concept's vector differently: whiten the representations g with their
covariance, then for concept w take

    g~_w = pinv(Cov_w(g)) E_w[g] / |pinv(Cov_w(g)) E_w[g]|,    l_w = (g~_w . E_w[g]) g~_w,

the direction along which the concept's own examples sit furthest out, scaled by how far. Each
concept is read from its own examples' mean and covariance, not against the other classes. The
whitening's mean and covariance come from generic text (Park et al. use the whole vocabulary; here
:func:`featgeom_core.data.background.background_set`), not from the K classes: centred on the
classes' own mean, K balanced class means would sum to zero and sit on the same simplex. The
directions live in the whitened space, where Park et al.'s causal inner product is the Euclidean
one, and the PSMs, controls and energy fits read them as they read the probes'. The whitening's
covariance gets a ridge of ``RIDGE`` times its mean eigenvalue and each class's is the Ledoit-Wolf
estimate, so a layer wider than its examples stays invertible.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from featgeom_core.config import resolve_device
from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.errors import InvalidParameter
from featgeom_core.probing.probes import check_probe_activations, masked_mean, split_rows
from featgeom_core.probing.quality import layer_quality
from featgeom_core.probing.result import ProbeResult

RIDGE = 1e-2
"""Ridge added to the whitening covariance, as a fraction of its mean eigenvalue (trace / d)."""


def ledoit_wolf(centred: torch.Tensor) -> torch.Tensor:
    """The Ledoit-Wolf covariance of centred rows (n, d): the sample covariance shrunk toward
    (trace / d) I by the amount that minimises the expected squared error (Ledoit and Wolf 2004),
    as scikit-learn's ``ledoit_wolf``; (d, d). Class covariances come from a few hundred examples
    in hundreds of dimensions, where the raw sample covariance's inverse is mostly noise."""
    n, d = centred.shape
    sample = centred.T @ centred / n
    mu = torch.trace(sample) / d
    eye = torch.eye(d, dtype=centred.dtype, device=centred.device)
    delta = ((sample - mu * eye) ** 2).sum()
    beta = (((centred**2).sum(dim=1) ** 2).sum() / n - (sample**2).sum()) / n
    shrinkage = torch.clamp(beta / delta.clamp_min(torch.finfo(centred.dtype).tiny), 0.0, 1.0) if delta > 0 else torch.tensor(1.0)
    return (1 - shrinkage) * sample + shrinkage * mu * eye


def whitening(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (d,), W (d, d)) with (x - mean) @ W the whitened rows of X (n, d): W = (Cov + ridge)^{-1/2}."""
    mean = X.mean(dim=0)
    centred = X - mean
    cov = centred.T @ centred / max(len(X) - 1, 1)
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(0) + RIDGE * values.clamp_min(0).mean() + torch.finfo(cov.dtype).tiny
    return mean, (vectors * values.rsqrt()) @ vectors.T


def class_mean_directions(G: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Park et al.'s vector of each concept: G (n, d) whitened rows, members (n, F) bool -> (F, d).

    For concept f with examples S_f: m = mean of G[S_f], C = their (Ledoit-Wolf) covariance,
    u = C^{-1} m normalised, and the vector (u . m) u.
    """
    out = torch.zeros(members.shape[1], G.shape[1], dtype=G.dtype, device=G.device)
    for f in range(members.shape[1]):
        rows = G[members[:, f]]
        if len(rows) < 2:
            raise InvalidParameter(f"feature {f} has {len(rows)} training examples; a class mean needs at least 2")
        mean = rows.mean(dim=0)
        u = torch.linalg.solve(ledoit_wolf(rows - mean), mean)
        u = u / u.norm().clamp_min(torch.finfo(G.dtype).tiny)
        out[f] = (u @ mean) * u
    return out


def train_class_mean_directions(
    activations: Mapping[int, np.ndarray],
    feature_set: FeatureSet,
    train_fraction: float = 0.7,
    seed: int = 0,
    device: str = "auto",
    background: Mapping[int, np.ndarray] | None = None,
) -> ProbeResult:
    """Class-mean directions for every (layer, feature), in the layer's whitened coordinates.

    ``background`` {layer: (m, d)}: generic activations the whitening is estimated from (without
    it, from the training rows themselves, which puts balanced classes back on the simplex).
    Fitted on the training split (the probes' split, by text); ``directions`` (L, F, d) are the
    vectors l_f above; ``scores`` (L, n, F) are each whitened example's projection on l_f minus the
    midpoint of the training positives' and negatives' mean projections, so a score above 0 reads
    "has feature f" and the held-out accuracies and quality mean what the probes' do.
    """
    layers = tuple(sorted(activations))
    if not layers:
        raise InvalidParameter("no layers to estimate directions at")
    for layer in layers:
        check_probe_activations(activations[layer], layer, feature_set.labels.shape[0])
    torch_device = resolve_device(device)
    train_rows = split_rows(feature_set, train_fraction, seed)
    train_member = feature_set.mask & train_rows[:, None]
    test_member = feature_set.mask & ~train_rows[:, None]
    labels = feature_set.labels
    positives = torch.as_tensor(labels & train_member, device=torch_device)
    negatives = torch.as_tensor(~labels & train_member, device=torch_device)
    directions, biases, scores = [], [], []
    for layer in layers:
        X = torch.as_tensor(activations[layer], dtype=torch.float64, device=torch_device)
        reference = (
            torch.as_tensor(background[layer], dtype=torch.float64, device=torch_device)
            if background is not None
            else X[torch.as_tensor(train_rows, device=torch_device)]
        )
        mean, W = whitening(reference)
        G = (X - mean) @ W
        vectors = class_mean_directions(G, positives)
        projected = G @ vectors.T  # (n, F)
        pos_mean = (projected * positives).sum(0) / positives.sum(0).clamp_min(1)
        neg_mean = (projected * negatives).sum(0) / negatives.sum(0).clamp_min(1)
        bias = -(pos_mean + neg_mean) / 2
        directions.append(vectors.cpu().numpy())
        biases.append(bias.cpu().numpy())
        scores.append((projected + bias).cpu().numpy())
    S = np.stack(scores)
    correct = (S > 0) == labels[None]
    return ProbeResult(
        layers=layers,
        feature_names=feature_set.feature_names,
        directions=np.stack(directions).astype(np.float32),
        bias=np.stack(biases).astype(np.float32),
        train_accuracy=masked_mean(correct, train_member),
        test_accuracy=masked_mean(correct, test_member),
        test_balanced_accuracy=0.5 * (masked_mean(correct, test_member & labels) + masked_mean(correct, test_member & ~labels)),
        train_rows=train_rows,
        iterations=0,
        scores=S.astype(np.float32),
        quality=tuple(layer_quality(S[i], feature_set, train_rows, layer) for i, layer in enumerate(layers)),
    )
