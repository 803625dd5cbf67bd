"""Sample-level Hessian features: curvature by batched nested JVPs against explicit Hessians, the
normalised KL divergence at W0, the write-up's XOR and TMS results over seeds, storage, and the
errors a user gets for bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian
from torch.func import functional_call

from conftest import on_one_thread
from featgeom_core import codec
from featgeom_core.errors import DataError, FeatgeomError, InvalidParameter
from featgeom_core.hessian import (
    HessianFeatures,
    HessianParams,
    directional_curvature,
    fit_hessian_features,
    polygon_error,
    reference_curvature,
    sample_divergence,
    toy_superposition,
    xor_net,
)

SEEDS = range(5)
FAST = {"steps": 150, "device": "cpu"}

pytestmark = pytest.mark.usefixtures("one_thread")


class SequenceClassifier(torch.nn.Module):
    """(B, P, 3) -> logits (B, P, 5): a tiny position-wise net, for KL and per-position checks."""

    featgeom_output = "logits"

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.first = torch.nn.Parameter(torch.randn(4, 3, generator=generator, dtype=torch.float64))
        self.second = torch.nn.Parameter(torch.randn(5, 4, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.first.T) @ self.second.T


def explicit_curvatures(model, names, inputs, U, divergence, per_position=False):
    """uᵀH(x)u from the full Hessian of each sample's (and position's) divergence, built here
    from scratch with torch.autograd.functional.hessian: (n, k) or (n, P, k)."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    shapes = [params[name].shape for name in names]
    w0 = torch.cat([params[name].reshape(-1) for name in names])

    def divergence_of(x, position=None):
        reference = functional_call(model, params, (x,))

        def value(w):
            swapped, start = dict(params), 0
            for name, shape in zip(names, shapes):
                swapped[name] = w[start : start + shape.numel()].view(shape)
                start += shape.numel()
            out = functional_call(model, swapped, (x,))
            if divergence == "mse":
                per = ((out - reference) ** 2).reshape(out.shape[0], -1, out.shape[-1]).mean(-1)
            else:
                p = torch.softmax(out, -1)
                per = (p * (torch.log_softmax(out, -1) - torch.log_softmax(reference, -1))).sum(-1).reshape(out.shape[0], -1)
            return per[0, position] if position is not None else per.sum()

        return value

    rows = []
    for i in range(len(inputs)):
        x = inputs[i : i + 1]
        if per_position:
            n_positions = functional_call(model, params, (x,)).shape[1]
            rows.append(torch.stack([torch.einsum("kp,pq,kq->k", U, hessian(divergence_of(x, p), w0), U) for p in range(n_positions)]))
        else:
            rows.append(torch.einsum("kp,pq,kq->k", U, hessian(divergence_of(x), w0), U))
    return torch.stack(rows)


def unit_directions(k, size, seed=0):
    U = torch.randn(k, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return U / U.norm(dim=1, keepdim=True)


@pytest.fixture(scope="module")
def tms_toys():
    return on_one_thread(lambda: {seed: toy_superposition(seed=seed) for seed in SEEDS})


@pytest.fixture(scope="module")
def xor_toys():
    return on_one_thread(lambda: {seed: xor_net(seed) for seed in SEEDS})


# -- curvature: batched nested JVPs == explicit Hessians -------------------------------------------


def test_curvature_matches_explicit_hessian_on_xor(xor_toys):
    toy = xor_toys[0]
    names = ("hidden.weight", "hidden.bias")
    U = unit_directions(5, 6)
    ours = directional_curvature(toy.model, names, toy.inputs, U, "mse")
    truth = explicit_curvatures(toy.model, names, toy.inputs, U, "mse")
    assert ours.shape == (4, 5)
    assert truth.abs().max() > 0.1
    assert (ours - truth).abs().max() < 1e-10
    assert (reference_curvature(toy.model, names, toy.inputs, U, "mse") - truth).abs().max() < 1e-10


@pytest.mark.parametrize("names", [("W",), ("W", "b")])
def test_curvature_matches_explicit_hessian_on_tms(tms_toys, names):
    toy = tms_toys[0]
    inputs = toy.inputs[:48]
    size = 10 if names == ("W",) else 15
    U = unit_directions(6, size, seed=1)
    ours = directional_curvature(toy.model, names, inputs, U, "mse", batch_size=20, directions_per_pass=4)
    truth = explicit_curvatures(toy.model, names, inputs, U, "mse")
    assert ours.shape == (48, 6)
    assert truth.abs().max() > 0.1
    assert (ours - truth).abs().max() < 1e-10


@pytest.mark.parametrize("divergence", ["kl", "mse"])
def test_curvature_per_position_matches_explicit_hessian(divergence):
    model = SequenceClassifier()
    inputs = torch.randn(6, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    U = unit_directions(3, 12, seed=2)
    each = directional_curvature(model, "first", inputs, U, divergence, positions="each")
    truth = explicit_curvatures(model, ("first",), inputs, U, divergence, per_position=True)
    assert each.shape == (6, 3, 3)
    assert truth.abs().max() > 1e-3
    assert (each - truth).abs().max() < 1e-10
    summed = directional_curvature(model, "first", inputs, U, divergence)
    assert (summed - truth.sum(dim=1)).abs().max() < 1e-10


@pytest.mark.parametrize("case", ["xor", "tms", "kl", "mse_positions"])
def test_output_jvp_curvature_matches_explicit_hessian(case, xor_toys, tms_toys):
    """One jvp of the outputs and D's closed-form second derivative: exact at W0, like nested jvps."""
    positions, divergence = "sum", "mse"
    if case == "xor":
        model, names, inputs = xor_toys[0].model, ("hidden.weight", "hidden.bias"), xor_toys[0].inputs
    elif case == "tms":
        model, names, inputs = tms_toys[0].model, ("W", "b"), tms_toys[0].inputs[:48]
    else:
        model, names = SequenceClassifier(), ("first",)
        inputs = torch.randn(6, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        positions, divergence = "each", ("kl" if case == "kl" else "mse")
    size = sum(dict(model.named_parameters())[n].numel() for n in names)
    U = unit_directions(4, size, seed=5)
    ours = directional_curvature(model, names, inputs, U, divergence, positions=positions, method="output_jvp", batch_size=20)
    truth = explicit_curvatures(model, names, inputs, U, divergence, per_position=positions == "each")
    assert truth.abs().max() > 1e-3
    assert (ours - truth).abs().max() < 1e-10


def test_fit_with_a_position_mask_counts_only_the_masked_in_positions():
    from featgeom_core.hessian.fit import random_directions
    from featgeom_core.hessian.losses import steepness_loss

    model = SequenceClassifier()
    inputs = torch.randn(6, 4, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    mask = torch.ones(6, 4, dtype=torch.bool)
    mask[0, 2:] = mask[3, 1:] = False
    params = {
        "k": 2,
        "steps": 1,
        "positions": "each",
        "init": "random",
        "restarts": 1,
        "seed": 4,
        "device": "cpu",
        "curvature": "output_jvp",
    }
    result = fit_hessian_features(model, "first", inputs, params, position_mask=mask)
    U0 = random_directions(2, 12, torch.Generator().manual_seed(4), torch.float64, torch.device("cpu"))
    every = directional_curvature(model, "first", inputs, U0, "kl", positions="each")  # (6, 4, 2)
    assert result.steep_loss[0] == pytest.approx(float(steepness_loss(every[mask])), rel=1e-12)
    assert result.steep_loss[0] != pytest.approx(float(steepness_loss(every.reshape(-1, 2))), rel=1e-6)
    with pytest.raises(DataError, match="no position that counts"):
        fit_hessian_features(model, "first", inputs, params, position_mask=torch.zeros(6, 4, dtype=torch.bool))
    with pytest.raises(InvalidParameter, match="position mask"):
        fit_hessian_features(model, "first", inputs, params, position_mask=mask[:, :3])


def test_kl_divergence_is_zero_with_zero_gradient_at_w0():
    model = SequenceClassifier()
    inputs = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    delta = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    value = sample_divergence(model, "first", inputs, delta, "auto")  # auto: the model declares logits
    assert value.shape == (5,)
    assert value.abs().max() == 0
    (gradient,) = torch.autograd.grad(value.sum(), delta)
    assert gradient.abs().max() < 1e-15
    moved = sample_divergence(model, "first", inputs, 0.1 * unit_directions(1, 12)[0], "kl")
    assert (moved > 0).all()
    # positions kept: one value per sample and position
    assert sample_divergence(model, "first", inputs, None, "kl", positions="each").shape == (5, 4)


# -- the write-up's toy results, over seeds ---------------------------------------------------------


def test_xor_features_peak_on_three_different_points(xor_toys):
    wanted = {(1.0, 1.0), (0.0, 1.0), (1.0, 0.0)}
    successes = []
    for seed, toy in xor_toys.items():
        assert (toy.model(toy.inputs).squeeze(1) - torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)).abs().max() < 0.05
        result = fit_hessian_features(toy.model, toy.default_block, toy.inputs, {"k": 3, "seed": seed, **FAST})
        assert result.curvatures.shape == (4, 3) and result.stopped_reason is None
        tops = {tuple(toy.inputs[int(result.top_samples(j, 1)[0])].tolist()) for j in range(3)}
        successes.append(tops == wanted)
    assert sum(successes) >= 4, successes


def test_tms_features_pick_out_a_different_input_each(tms_toys):
    successes = []
    for seed, toy in tms_toys.items():
        assert polygon_error(toy.model.W.detach()) <= 0.1  # a pentagon
        result = fit_hessian_features(toy.model, toy.default_block, toy.inputs, {"k": 5, "seed": seed, **FAST})
        single = torch.nonzero((toy.inputs > 0).sum(dim=1) == 1).squeeze(1)
        top = single[result.curvatures[single].argmax(dim=0)]  # each feature's top single-input sample
        active = [int(torch.nonzero(toy.inputs[i])[0]) for i in top]
        successes.append(sorted(active) == list(range(5)))
    assert sum(successes) >= 4, successes


def test_fit_is_seeded_and_records_both_losses(xor_toys):
    toy = xor_toys[1]
    params = {"k": 3, "steps": 20, "seed": 3, "device": "cpu"}
    first = fit_hessian_features(toy.model, toy.default_block, toy.inputs, params)
    again = fit_hessian_features(toy.model, toy.default_block, toy.inputs, params)
    assert torch.equal(first.U, again.U)
    assert first.steep_loss.shape == first.interference_loss.shape == (20,)
    assert np.isfinite(first.steep_loss).all() and np.isfinite(first.interference_loss).all()
    assert torch.allclose(first.U.norm(dim=1), torch.ones(3, dtype=torch.float64))
    other = fit_hessian_features(toy.model, toy.default_block, toy.inputs, {**params, "seed": 4})
    assert not torch.equal(first.U, other.U)


def test_result_round_trips_through_arrays(xor_toys):
    toy = xor_toys[0]
    result = fit_hessian_features(toy.model, toy.default_block, toy.inputs, {"k": 2, "steps": 5, "device": "cpu", "restarts": 2})
    arrays, meta = codec.encode(result)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    meta = json.loads(json.dumps(meta))
    back = codec.decode(HessianFeatures, arrays, meta)
    assert torch.equal(back.U, result.U) and torch.equal(back.curvatures, result.curvatures)
    assert np.array_equal(back.steep_loss, result.steep_loss) and np.array_equal(back.objectives, result.objectives)
    assert back.block == ("hidden.weight", "hidden.bias") and back.block_shapes == ((2, 2), (2,))
    assert back.summary() == result.summary()
    assert back.direction(0)["hidden.weight"].shape == (2, 2)


def test_fit_keeps_positions_apart_when_asked():
    model = SequenceClassifier()
    inputs = torch.randn(8, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    result = fit_hessian_features(model, "second", inputs, {"k": 2, "steps": 5, "positions": "each", "device": "cpu"})
    assert result.divergence == "kl" and result.curvatures.shape == (8, 3, 2)


# -- stopping --------------------------------------------------------------------------------------


def test_nan_in_the_loss_stops_and_keeps_the_last_good_directions(xor_toys):
    toy = xor_toys[0]
    inputs = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inputs[37] = math.nan
    result = fit_hessian_features(toy.model, toy.default_block, inputs, {"k": 3, "steps": 50, "batch_size": 8, "seed": 1, "device": "cpu"})
    assert result.stopped_reason is not None and "non-finite" in result.stopped_reason
    assert 0 < result.steps_done < 50  # some good steps, then the batch with the NaN sample
    assert torch.isfinite(result.U).all() and torch.allclose(result.U.norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert np.isfinite(result.steep_loss).all()
    assert torch.isnan(result.curvatures[37]).all() and torch.isfinite(result.curvatures[:37]).all()


def test_should_stop_ends_the_run_early(xor_toys):
    toy = xor_toys[0]
    calls, steps = [], []

    def report(fraction: float, message: str, metrics: dict | None = None) -> None:
        calls.append(fraction)
        if metrics and "step" in metrics:
            steps.append(metrics["step"])

    result = fit_hessian_features(
        toy.model,
        toy.default_block,
        toy.inputs,
        {"k": 3, "steps": 100, "device": "cpu"},
        progress=report,
        should_stop=lambda: len(steps) >= 3,
    )
    assert result.steps_done == 3 and "stopped on request" in result.stopped_reason
    assert steps == [1, 2, 3] and calls[-1] == 1.0


# -- bad input -------------------------------------------------------------------------------------


def test_a_block_that_does_not_exist_is_refused(xor_toys):
    toy = xor_toys[0]
    with pytest.raises(InvalidParameter, match="'hidden.wieght' does not exist.*hidden.weight"):
        fit_hessian_features(toy.model, "hidden.wieght", toy.inputs, FAST)
    with pytest.raises(InvalidParameter, match="does not exist"):
        directional_curvature(toy.model, ["hidden.weight", "nope"], toy.inputs, unit_directions(1, 6))


def test_a_frozen_block_is_refused():
    toy = xor_net(2)
    toy.model.hidden.bias.requires_grad_(False)
    with pytest.raises(InvalidParameter, match="requires_grad=False"):
        fit_hessian_features(toy.model, ("hidden.weight", "hidden.bias"), toy.inputs, FAST)


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 0},
        {"lambda_interference": -1.0},
        {"steps": 0},
        {"learning_rate": 0.0},
        {"device": "tpu"},
        {"divergence": "l2"},
        {"unknown": 1},
    ],
)
def test_bad_params_are_refused(bad):
    with pytest.raises(InvalidParameter):
        HessianParams(**bad)


def test_more_directions_than_the_block_has_numbers_are_refused(xor_toys):
    toy = xor_toys[0]
    with pytest.raises(InvalidParameter, match="k = 3 .* 2 numbers"):
        fit_hessian_features(toy.model, "hidden.bias", toy.inputs, {"k": 3, **FAST})
    with pytest.raises(InvalidParameter, match="lambda_interference"):
        fit_hessian_features(toy.model, "hidden.bias", toy.inputs, {"k": 1, "lambda_interference": -0.5})


def test_kl_on_a_regression_output_is_refused(xor_toys):
    toy = xor_toys[0]
    with pytest.raises(InvalidParameter, match="not a distribution.*use divergence='mse'"):
        fit_hessian_features(toy.model, toy.default_block, toy.inputs, {"k": 1, "divergence": "kl", **FAST})
    with pytest.raises(InvalidParameter, match="not a distribution"):
        directional_curvature(toy.model, toy.default_block, toy.inputs, unit_directions(1, 6), "kl")


def test_bad_inputs_and_directions_are_refused(xor_toys):
    toy = xor_toys[0]
    with pytest.raises(DataError, match="at least one sample"):
        fit_hessian_features(toy.model, toy.default_block, toy.inputs[:0], FAST)
    with pytest.raises(InvalidParameter, match=r"\(k, 6\)"):
        directional_curvature(toy.model, toy.default_block, toy.inputs, unit_directions(2, 5))

    class TupleOut(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))

        def forward(self, x):
            return x * self.w, None

    with pytest.raises(DataError, match="one output tensor"):
        directional_curvature(TupleOut(), "w", toy.inputs, unit_directions(1, 2))
    assert issubclass(DataError, FeatgeomError)
