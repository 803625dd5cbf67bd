"""The Hessian analysis's result types: a fit's directions, activations and loss history, and the
job's result (what its samples are); frozen dataclasses, stored by :mod:`featgeom_core.codec`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from featgeom_core.errors import InvalidParameter
from featgeom_core.hessian.reading import (
    interference_matrix,
    single_input_samples,
    token_context,
    top_indices,
)

TRAINING, HELD_OUT = "training", "held-out"


@dataclass(frozen=True)
class HessianFeatures:
    """k learned directions in a parameter block and every sample's activation of each.

    ``U`` (k, block size): unit directions in the flattened block (its parameters flattened and
    concatenated in ``block`` order). ``curvatures`` (n_samples, k), or (n_samples, n_positions,
    k) with ``positions="each"``: uᵀH(x)u, the feature activations, in divergence units per
    squared weight unit. ``steep_loss`` and ``interference_loss`` (steps_done,): L_steep and
    L_interference of each step's batch for the kept start, measured before that step's updates.
    ``stopped_reason``: None when every step ran, else why the run stopped early (U is then the
    last good one). ``objectives`` (restarts,): each start's final L_steep - lambda
    L_interference on the samples the start was chosen on; ``restart``: the kept start.
    """

    U: torch.Tensor
    curvatures: torch.Tensor
    steep_loss: np.ndarray
    interference_loss: np.ndarray
    block: tuple[str, ...]
    block_shapes: tuple[tuple[int, ...], ...]
    divergence: str
    params: dict[str, Any]
    stopped_reason: str | None = None
    restart: int = 0
    objectives: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.U.shape[0])

    @property
    def steps_done(self) -> int:
        return int(len(self.steep_loss))

    def _check_feature(self, feature: int) -> None:
        if not 0 <= feature < self.k:
            raise InvalidParameter(f"feature {feature}: choose 0..{self.k - 1}")

    def top_samples(self, feature: int, n: int = 5) -> torch.Tensor:
        """Indices of the n samples (sample-positions, flattened, with ``positions="each"``) with
        the largest activation of ``feature``, largest first: (min(n, samples),)."""
        self._check_feature(feature)
        values = self.curvatures[..., feature].reshape(-1)
        return torch.topk(values, min(n, len(values))).indices

    def direction(self, feature: int) -> dict[str, torch.Tensor]:
        """Direction ``feature`` as one tensor per block parameter, in the parameters' shapes."""
        self._check_feature(feature)
        out, start = {}, 0
        for name, shape in zip(self.block, self.block_shapes):
            count = math.prod(shape)
            out[name] = self.U[feature, start : start + count].reshape(shape)
            start += count
        return out

    def summary(self) -> dict[str, Any]:
        """A few JSON-able numbers that say what the result is."""
        last = self.steps_done - 1
        return {
            "block": list(self.block),
            "k": self.k,
            "divergence": self.divergence,
            "steps_done": self.steps_done,
            "stopped_reason": self.stopped_reason,
            "n_samples": int(self.curvatures.shape[0]),
            "restart": self.restart,
            "final_steep_loss": float(self.steep_loss[last]) if last >= 0 else None,
            "final_interference_loss": float(self.interference_loss[last]) if last >= 0 else None,
            "max_activation": [float(v) for v in self.curvatures.reshape(-1, self.k).max(dim=0).values],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class TokenSet:
    """The real tokens of some texts, one row per token (padding never appears): ``table`` columns
    ``text``, ``position``, ``offsets`` (n, 2), ``special``, ``token_ids`` (see
    :meth:`featgeom_core.hessian.language.TokenBatch.token_table`); ``strings``: each text's token
    strings; ``texts``: the texts (cut after their last token)."""

    table: dict[str, np.ndarray]
    strings: list[list[str]]
    texts: list[str]

    def __len__(self) -> int:
        return int(len(self.table["text"]))

    def token(self, row: int) -> str:
        """The token string of one row."""
        return self.strings[int(self.table["text"][row])][int(self.table["position"][row])]

    def context(self, row: int, window: int = 8) -> tuple[str, str, str]:
        """(left, token, right) of one row in its text (see :func:`~featgeom_core.hessian.reading.token_context`)."""
        text = int(self.table["text"][row])
        rows = np.flatnonzero(self.table["text"] == text)
        return token_context(
            self.texts[text],
            self.table["offsets"][rows],
            self.table["special"][rows],
            self.strings[text],
            int(self.table["position"][row]),
            window,
        )


@dataclass(frozen=True)
class HessianFeaturesResult:
    """A job's features and what its samples are. ``features.curvatures`` (n_samples, k): the
    training samples (toys: ``inputs`` (n_samples, n_inputs); a language model: the real tokens
    of the training texts, ``train_tokens``). A language model's features are also read on
    held-out texts: ``heldout_tokens`` with ``heldout_curvatures`` (n_heldout_tokens, k)."""

    features: HessianFeatures
    model: str
    description: str
    inputs: np.ndarray | None = None
    train_tokens: TokenSet | None = None
    heldout_tokens: TokenSet | None = None
    heldout_curvatures: np.ndarray | None = None
    output: str = "regression"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def is_language_model(self) -> bool:
        return self.train_tokens is not None

    def sample_sets(self) -> list[str]:
        """The sets of samples features can be read on: held-out first for a language model."""
        return [HELD_OUT, TRAINING] if self.heldout_tokens is not None else [TRAINING]

    def curvatures(self, which: str = TRAINING) -> np.ndarray:
        """(n_samples, k) activations of the ``which`` set."""
        if which == TRAINING:
            return self.features.curvatures.detach().cpu().numpy().reshape(-1, self.features.k)
        if which == HELD_OUT and self.heldout_curvatures is not None:
            return np.asarray(self.heldout_curvatures)
        raise InvalidParameter(f"sample set {which!r}: choose one of {', '.join(self.sample_sets())}")

    def _tokens(self, which: str) -> TokenSet | None:
        return self.heldout_tokens if which == HELD_OUT else self.train_tokens

    def single_input_mask(self) -> np.ndarray | None:
        """Toys: samples with exactly one non-zero input; None for a language model."""
        return None if self.inputs is None else single_input_samples(self.inputs)

    def top_rows(
        self, feature: int, n: int = 5, which: str = TRAINING, single_input_only: bool = False, window: int = 8
    ) -> list[dict[str, Any]]:
        """The ``n`` samples of ``which`` that activate ``feature`` most, largest first, one dict
        each: ``rank``, ``sample`` (row), ``value``, and ``input`` (toys) or ``token``, ``left``,
        ``right``, ``text``, ``position`` (language models)."""
        if not 0 <= feature < self.features.k:
            raise InvalidParameter(f"feature {feature}: choose 0..{self.features.k - 1}")
        values = self.curvatures(which)[:, feature]
        among = self.single_input_mask() if single_input_only else None
        rows = []
        for rank, index in enumerate(top_indices(values, n, among)):
            row: dict[str, Any] = {"feature": feature, "rank": rank + 1, "sample": int(index), "value": float(values[index])}
            tokens = self._tokens(which)
            if tokens is not None:
                left, token, right = tokens.context(int(index), window)
                row.update(
                    token=token,
                    left=left,
                    right=right,
                    text=int(tokens.table["text"][index]),
                    position=int(tokens.table["position"][index]),
                )
            elif self.inputs is not None:
                row["input"] = [float(v) for v in self.inputs[index]]
            rows.append(row)
        return rows

    def sample_labels(self, which: str = TRAINING) -> list[str]:
        """One label per sample of ``which``: a toy's input vector, or a token string."""
        tokens = self._tokens(which)
        if tokens is not None:
            return [tokens.token(i) for i in range(len(tokens))]
        if self.inputs is None:
            return [str(i) for i in range(len(self.curvatures(which)))]
        return ["[" + ", ".join(f"{v:.3g}" for v in row) + "]" for row in self.inputs]

    def interference(self, which: str = TRAINING) -> np.ndarray:
        """(k, k) |cos of directions| x co-activation on ``which`` (see :func:`~featgeom_core.hessian.reading.interference_matrix`)."""
        return interference_matrix(self.features.U.detach().cpu().numpy(), self.curvatures(which))

    def summary(self) -> dict[str, Any]:
        """The features' summary, the model, and each feature's top sample (held-out for a language model)."""
        which = self.sample_sets()[0]
        top = []
        for j in range(self.features.k):
            rows = self.top_rows(j, 1, which)
            top.append(None if not rows else rows[0].get("token", rows[0].get("input")))
        return {"model": self.model, **self.features.summary(), f"top {which} sample": top, "seconds": round(sum(self.timings.values()), 2)}
