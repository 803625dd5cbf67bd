"""The paper's image-MLP case on data every machine has: scikit-learn's bundled 8x8 digits
(1,797 images, no download), a ReLU MLP 64 -> hidden -> ... -> 10, trained here in seconds.

Node layers: ``input`` (the 64 pixels scaled to [0, 1]), ``layers.<k>`` (the k-th hidden layer after
its ReLU) and ``output`` (the logits). Inputs are (N, 1, 64): one position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import torch

from featgeom_core.errors import DataError
from featgeom_core.interaction.cores import Positionwise
from featgeom_core.interaction.params import DigitsTrainParams
from featgeom_core.interaction.sequential import (
    Section,
    SequentialModel,
    affine,
    with_constant,
)
from featgeom_core.progress import Progress, silent


@dataclass(frozen=True)
class DigitsData:
    """Images (N, 1, 64) in [0, 1] and labels (N,), split into train and test."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor


def digits_data(test_fraction: float = 0.25, seed: int = 0) -> DigitsData:
    """scikit-learn's digits (bundled with the package), shuffled with ``seed`` and split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 64) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return DigitsData(images[train], labels[train], images[test], labels[test])


class DigitsMLP(torch.nn.Module):
    """64 -> hidden (ReLU) x depth -> 10; ``forward`` (N, 1, 64) -> logits (N, 1, 10)."""

    def __init__(self, hidden: int = 60, depth: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        widths = [64] + [hidden] * depth
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.readout = torch.nn.Linear(hidden, 10)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.readout(x)

    def sequential(self, dtype: torch.dtype = torch.float64) -> SequentialModel:
        """Node layers input, layers.0, ..., output; biases folded into the constant coordinate."""

        def folded(linear: torch.nn.Linear, keep_constant: bool) -> torch.Tensor:
            return affine(linear.weight.detach().T.to(dtype), linear.bias.detach().to(dtype), keep_constant)

        hidden = [cast(torch.nn.Linear, layer) for layer in self.layers]
        sections = [Section(Positionwise(0, layer.out_features), folded(layer, True)) for layer in hidden]
        sections.append(Section(linear_in=folded(self.readout, False)))
        names = ["input"] + [f"layers.{k}" for k in range(len(self.layers))] + ["output"]

        def embed(inputs: torch.Tensor) -> torch.Tensor:
            x = inputs.to(dtype)
            return with_constant(x, torch.ones(*x.shape[:-1], 1, dtype=dtype))

        return SequentialModel("digits MLP", names, embed, sections, [True] * (len(names) - 1) + [False], metric="accuracy")


def load_digits_mlp(state: Mapping[str, torch.Tensor]) -> DigitsMLP:
    """A DigitsMLP from its state dict (``layers.<k>.weight/bias``, ``readout.weight/bias``);
    a clear error for any other shape."""
    try:
        depth = len({k.split(".")[1] for k in state if k.startswith("layers.")})
        hidden = int(state["layers.0.weight"].shape[0])
        model = DigitsMLP(hidden, depth)
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except (KeyError, RuntimeError, IndexError) as exc:
        raise DataError(f"not a digits MLP state dict (64 -> hidden x depth -> 10): {str(exc).splitlines()[0][:200]}") from None
    return model


def train_digits(
    params: DigitsTrainParams = DigitsTrainParams(), progress: Progress | None = None, report_every: int = 50
) -> tuple[DigitsMLP, DigitsData, dict[str, list[float]]]:
    """Train the MLP; returns it, the split it was trained on, and the history (epoch, train
    loss, test accuracy)."""
    report = progress or silent
    data = digits_data(params.test_fraction, params.seed)
    model = DigitsMLP(params.hidden, params.depth, params.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "test_accuracy": []}
    for epoch in range(params.epochs):
        loss = torch.nn.functional.cross_entropy(model(data.train_inputs)[:, -1], data.train_labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if epoch % report_every and epoch != params.epochs - 1:
            report((epoch + 1) / params.epochs, f"epoch {epoch + 1}/{params.epochs}")  # every epoch: how a cancel is heard
            continue
        with torch.no_grad():
            accuracy = float((model(data.test_inputs)[:, -1].argmax(-1) == data.test_labels).float().mean())
        history["epoch"].append(epoch)
        history["train_loss"].append(float(loss.detach()))
        history["test_accuracy"].append(accuracy)
        report(
            (epoch + 1) / params.epochs,
            f"epoch {epoch + 1}/{params.epochs}: loss {float(loss.detach()):.3g}, test accuracy {accuracy:.3f}",
            {"epoch": epoch + 1, "train_loss": history["train_loss"][-1], "test_accuracy": accuracy},
        )
    return model, data, history
