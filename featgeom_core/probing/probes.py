"""Linear probes -> feature directions, trained for all features x layers as one torch problem.

As in the thesis: L2-regularised logistic regression per feature (one-vs-rest), balanced class
weights, C = 1, a seeded 70/30 split. The objective of problem p is scikit-learn's

    0.5 * ||w_p||^2 + C * sum_i s_pi * log(1 + exp(-y_pi (w_p . x_i + b_p)))

with s_pi the balanced class weight of example i in feature p's training sample (0 outside it).
The problems are independent; one batched L-BFGS advances them together, each with its own
history, line search and stop, so a probe never depends on which others are solved beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from featgeom_core.config import resolve_device
from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.lbfgs import ValueAndGrad, minimise_each
from featgeom_core.probing.params import ProbeParams
from featgeom_core.probing.quality import layer_quality
from featgeom_core.probing.result import ProbeResult

SOLVE_STAGES = ((torch.float32, 1.0, 1e-10), (torch.float64, 1e-2, 1e-15))
"""(dtype, gradient tolerance as a multiple of ``ProbeParams.tolerance``, relative change that stops
a probe): float32 until losses summed over thousands of examples reach its floor (about 5e-4 from
the optimum), then float64 from there to 1e-5 of it, so a probe's digits are its data's and not
the rounding's. The float64 stage takes a third of the iterations."""
MAX_LINE_SEARCH = 10
"""Step lengths tried before a probe is taken as converged to working precision."""


def split_rows(feature_set: FeatureSet, train_fraction: float, seed: int) -> np.ndarray:
    """Seeded train/test split by *text*, so no text contributes to both sides: (n,) bool, True = train."""
    texts = np.unique(feature_set.example_text)
    rng = np.random.default_rng(seed)
    train_texts = rng.permutation(texts)[: int(round(train_fraction * len(texts)))]
    return np.isin(feature_set.example_text, train_texts)


def balanced_sample_weights(labels: np.ndarray, member: np.ndarray) -> np.ndarray:
    """scikit-learn's 'balanced' weights n / (2 n_class) per column, 0 where ``member`` is False: (n, F)."""
    n = member.sum(axis=0).astype(np.float64)
    n_pos = (labels & member).sum(axis=0).astype(np.float64)
    n_neg = n - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        w_pos = np.where(n_pos > 0, n / (2 * n_pos), 0.0)
        w_neg = np.where(n_neg > 0, n / (2 * n_neg), 0.0)
    return np.where(labels, w_pos, w_neg) * member


def check_probe_activations(X: np.ndarray, layer: int, n_samples: int) -> None:
    """Refuse one layer's activations (n, d) that cannot be probed: another number of rows than
    samples, NaN/inf (a diverged checkpoint), or every sample the same (nothing to separate)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != n_samples:
        raise DataError(f"layer {layer}: activations of shape {X.shape} for {n_samples} samples")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        raise DataError(
            f"layer {layer}: activations hold NaN or infinite values in {int((~finite).sum())} of {n_samples} samples "
            "(a diverged or damaged checkpoint?)"
        )
    if not np.any(X.max(axis=0) > X.min(axis=0)):
        raise DataError(f"layer {layer}: every sample has the same activations; there is nothing for a probe to separate")


def train_probes(
    activations: Mapping[int, np.ndarray],
    feature_set: FeatureSet,
    params: ProbeParams = ProbeParams(),
    device: str = "auto",
) -> ProbeResult:
    """Train every (layer, feature) probe jointly; activations: {layer: (n, d)} as from ``extract``."""
    return train_probe_sets(activations, [feature_set], params, device)[0]


def train_probe_sets(
    activations: Mapping[int, np.ndarray],
    feature_sets: Sequence[FeatureSet],
    params: ProbeParams = ProbeParams(),
    device: str = "auto",
) -> list[ProbeResult]:
    """Probes for several labellings of the same examples (the real labels and shuffled-label
    controls, say) as one problem: one training span and one L-BFGS run for every (set, layer,
    feature). The sets must share their examples (texts, positions and masks); each keeps its own
    labels. Returns one :class:`ProbeResult` per set, as :func:`train_probes` would give it.
    """
    layers = tuple(sorted(activations))
    if not layers:
        raise InvalidParameter("no layers to probe")
    if not feature_sets:
        raise InvalidParameter("no feature set to probe")
    first = feature_sets[0]
    for other in feature_sets[1:]:
        if not (np.array_equal(other.example_text, first.example_text) and np.array_equal(other.mask, first.mask)):
            raise InvalidParameter(f"{other.name!r} and {first.name!r} do not share their examples; probe them separately")
    for layer in layers:
        check_probe_activations(activations[layer], layer, first.labels.shape[0])
    torch_device = resolve_device(device)
    train_rows = split_rows(first, params.train_fraction, params.seed)
    train_member = first.mask & train_rows[:, None]
    test_member = first.mask & ~train_rows[:, None]
    for feature_set in feature_sets:
        for f, name in enumerate(feature_set.feature_names):
            for member, side in ((train_member, "training"), (test_member, "held-out")):
                labels = feature_set.labels[member[:, f], f]
                if labels.all() or not labels.any():
                    raise InvalidParameter(f"feature {name!r} has only one class in its {side} split; use more data or another seed")

    labels = np.concatenate([feature_set.labels for feature_set in feature_sets], axis=1)  # (n, sum F)
    X = torch.stack([torch.as_tensor(activations[layer], dtype=torch.float32) for layer in layers]).to(torch_device)  # (L, n, d)
    y = torch.as_tensor(np.where(labels, 1.0, -1.0), dtype=torch.float32, device=torch_device)
    member = np.tile(train_member, (1, len(feature_sets)))
    s = torch.as_tensor(balanced_sample_weights(labels, member), dtype=torch.float32, device=torch_device)
    W, b, iterations = _fit_in_training_span(X, y, s, torch.as_tensor(train_member.any(axis=1), device=torch_device), params)
    with torch.no_grad():
        all_scores = (torch.einsum("lnd,lfd->lnf", X, W) + b[:, None, :]).cpu().numpy()
    directions, bias = W.cpu().numpy().astype(np.float32), b.cpu().numpy().astype(np.float32)
    results = []
    start = 0
    for feature_set in feature_sets:
        columns = slice(start, start + feature_set.n_features)
        start += feature_set.n_features
        scores = all_scores[:, :, columns]
        truth = feature_set.labels[None]
        correct = (scores > 0) == truth
        results.append(
            ProbeResult(
                layers=layers,
                feature_names=feature_set.feature_names,
                directions=directions[:, columns],
                bias=bias[:, columns],
                train_accuracy=masked_mean(correct, train_member),
                test_accuracy=masked_mean(correct, test_member),
                test_balanced_accuracy=0.5 * (masked_mean(correct, test_member & truth[0]) + masked_mean(correct, test_member & ~truth[0])),
                train_rows=train_rows,
                iterations=iterations,
                scores=scores.astype(np.float32),
                quality=tuple(layer_quality(scores[i], feature_set, train_rows, layer) for i, layer in enumerate(layers)),
            )
        )
    return results


def _fit_in_training_span(
    X: torch.Tensor, y: torch.Tensor, s: torch.Tensor, train_any: torch.Tensor, params: ProbeParams
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Solve all (layer, feature) problems; returns W (L, F, d), b (L, F) and L-BFGS iterations.

    Exact reparametrisation: centring X only shifts the unpenalised bias, and the optimal w lies
    in the span of the centred training rows (representer theorem), so with the thin SVD
    X_train - mu = U S V^T we write w = V z and penalise ||z||^2 = ||w||^2. In that basis problem
    (l, f) has Hessian roughly I + c_f S_l^2, so z = u / sqrt(1 + c_f S_l^2) makes it near-isotropic
    and L-BFGS converges in tens of iterations instead of hundreds.

    Every problem has its own L-BFGS history, step and stop (:func:`minimise_each`): a probe is the
    same whichever layers and label sets are solved beside it. (One torch L-BFGS on the summed
    loss shared its line search and stop: a layer's probes moved by 0.4% with the layers beside it.)
    """
    mu = (X * train_any[None, :, None]).sum(1, keepdim=True) / train_any.sum()  # (L, 1, d)
    centred = X - mu
    _, S, Vh = torch.linalg.svd(centred[:, train_any], full_matrices=False)  # S (L, r), Vh (L, r, d)
    keep = S > S[:, :1] * 1e-6
    S, Vh = S * keep, Vh * keep[..., None]
    # Only training rows enter the objective (every other row has weight 0): (L, n_train, r) coordinates in the span.
    Z = torch.einsum("lnd,lrd->lnr", centred[:, train_any], Vh)
    y, s = y[train_any], s[train_any]  # (n_train, F)
    curvature = 0.25 * params.C * s.sum(0) / max(int(train_any.sum()), 1)  # (F,): the loss's mean curvature per problem
    precondition = (1.0 + curvature[None, :, None] * S.pow(2)[:, None, :]).rsqrt()  # (L, F, r)
    n_layers, n_features, rank = X.shape[0], y.shape[1], Z.shape[-1]
    x = torch.zeros(n_layers * n_features, rank + 1, dtype=X.dtype, device=X.device)
    iterations = 0
    for dtype, tolerance, tol_change in SOLVE_STAGES:  # from float32's floor to float64's
        objective = _span_objective(Z.to(dtype), y.to(dtype), s.to(dtype), precondition.to(dtype), params.C)
        solved = minimise_each(
            objective,
            x.to(dtype),
            max_iter=params.max_iter,
            history=20,
            tol_grad=params.tolerance * tolerance,
            tol_change=tol_change,
            max_line_search=MAX_LINE_SEARCH,
        )
        x, iterations = solved.x, iterations + solved.iterations
    with torch.no_grad():
        x = x.to(X.dtype)
        u = x[:, :rank].view(n_layers, n_features, rank)
        W = torch.einsum("lfr,lrd->lfd", u * precondition, Vh)
        bias = x[:, rank].view(n_layers, n_features) - torch.einsum("lfd,lod->lf", W, mu)
    return W, bias, iterations


def _span_objective(Z: torch.Tensor, y: torch.Tensor, s: torch.Tensor, precondition: torch.Tensor, C: float) -> ValueAndGrad:
    """The probes' objective and gradient for :func:`minimise_each`, problem l * F + f at rows
    (b,) with coordinates (b, r + 1) (u, then the bias): Z (L, n_train, r) the training rows in the
    span, y and s (n_train, F) the signs and weights, precondition (L, F, r)."""
    n_features, rank = y.shape[1], Z.shape[-1]
    weighted_y = C * s * y  # (n_train, F)

    # The gradient by hand: autograd's einsum backward copied Z on every call, 5x the cost of the two matmuls.
    # A line search asks for few problems, so only their layers' products are formed.
    @torch.no_grad()
    def value_and_grad(x_rows: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.empty(len(rows), dtype=torch.float64, device=Z.device)
        grad = torch.empty_like(x_rows)
        layer_of, feature_of = rows // n_features, rows % n_features
        for layer in torch.unique(layer_of).tolist():
            at = (layer_of == layer).nonzero().squeeze(1)
            features = feature_of[at]
            pre = precondition[layer, features]  # (k, r)
            z = x_rows[at, :rank] * pre
            margins = y[:, features] * (Z[layer] @ z.T + x_rows[at, rank])  # (n_train, k)
            # Summed in float64: near the optimum the line search compares values 1e-9 apart, relatively.
            loss = C * (s[:, features] * torch.nn.functional.softplus(-margins)).sum(0, dtype=torch.float64)
            values[at] = loss + 0.5 * z.pow(2).sum(1, dtype=torch.float64)
            slope = -weighted_y[:, features] * torch.sigmoid(-margins)  # d loss / d (w.x + b), (n_train, k)
            grad[at, :rank] = (slope.T @ Z[layer] + z) * pre
            grad[at, rank] = slope.sum(0)
        return values, grad

    return value_and_grad


def masked_mean(correct: np.ndarray, member: np.ndarray) -> np.ndarray:
    """The share of rows where ``member`` (n, F) holds that are ``correct`` (L, n, F) bool: (L, F)."""
    return (correct & member[None]).sum(axis=1) / np.maximum(member.sum(axis=0), 1)[None]


def shuffle_labels(feature_set: FeatureSet, seed: int) -> FeatureSet:
    """The same examples with labels permuted: whole rows for multi-class sets (keeping one class
    per example), within each feature's sample for multi-label sets."""
    rng = np.random.default_rng(seed)
    labels = feature_set.labels.copy()
    if feature_set.kind == "multiclass":
        labels = labels[rng.permutation(len(labels))]
    else:
        for f in range(feature_set.n_features):
            rows = np.flatnonzero(feature_set.mask[:, f])
            labels[rows, f] = labels[rng.permutation(rows), f]
    return replace(feature_set, name=f"{feature_set.name} (shuffled labels)", labels=labels)


def shuffled_label_control(
    activations: Mapping[int, np.ndarray],
    feature_set: FeatureSet,
    params: ProbeParams = ProbeParams(),
    label_seed: int = 1,
    device: str = "auto",
) -> ProbeResult:
    """Probes retrained on shuffled labels: the geometry a probe gets from the label structure alone.

    With balanced one-vs-rest classes the class-mean differences sum to zero, so K probe
    directions sit near a simplex (cosines near -1/(K-1)) whatever the model knows.
    """
    return train_probes(activations, shuffle_labels(feature_set, label_seed), params, device)


def train_probes_sklearn(
    activations: Mapping[int, np.ndarray], feature_set: FeatureSet, params: ProbeParams = ProbeParams(), solver: str = "lbfgs"
) -> ProbeResult:
    """The scikit-learn reference (one LogisticRegression per layer x feature); same split and weights."""
    from sklearn.linear_model import LogisticRegression

    layers = tuple(sorted(activations))
    train_rows = split_rows(feature_set, params.train_fraction, params.seed)
    n, n_features = feature_set.labels.shape
    d = next(iter(activations.values())).shape[1]
    directions = np.zeros((len(layers), n_features, d), dtype=np.float32)
    bias = np.zeros((len(layers), n_features), dtype=np.float32)
    scores = np.zeros((len(layers), n, n_features), dtype=np.float32)
    for i, layer in enumerate(layers):
        for f in range(n_features):
            member = feature_set.mask[:, f] & train_rows
            model = LogisticRegression(C=params.C, class_weight="balanced", solver=solver, max_iter=params.max_iter * 4)
            model.fit(activations[layer][member], feature_set.labels[member, f])
            directions[i, f] = model.coef_[0]
            bias[i, f] = model.intercept_[0]
            scores[i, :, f] = model.decision_function(activations[layer])
    correct = (scores > 0) == feature_set.labels[None]
    train_member = feature_set.mask & train_rows[:, None]
    test_member = feature_set.mask & ~train_rows[:, None]
    truth = feature_set.labels
    return ProbeResult(
        layers=layers,
        feature_names=feature_set.feature_names,
        directions=directions,
        bias=bias,
        train_accuracy=masked_mean(correct, train_member),
        test_accuracy=masked_mean(correct, test_member),
        test_balanced_accuracy=0.5 * (masked_mean(correct, test_member & truth) + masked_mean(correct, test_member & ~truth)),
        train_rows=train_rows,
        iterations=-1,
        scores=scores,
        quality=tuple(layer_quality(scores[i], feature_set, train_rows, layer) for i, layer in enumerate(layers)),
    )
