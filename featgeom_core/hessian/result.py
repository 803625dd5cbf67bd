"""The result of a Hessian-feature fit: directions, activations, loss history; stored as numpy
arrays plus JSON metadata (never pickle)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from featgeom_core.errors import InvalidParameter


@dataclass
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
            out[name] = self.U[feature, start: start + count].reshape(shape)
            start += count
        return out

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """``U``, ``curvatures``, ``steep_loss``, ``interference_loss``, ``objectives`` as numpy
        arrays, named with ``prefix``."""
        return {f"{prefix}U": self.U.detach().cpu().numpy(), f"{prefix}curvatures": self.curvatures.detach().cpu().numpy(),
                f"{prefix}steep_loss": np.asarray(self.steep_loss, dtype=np.float64),
                f"{prefix}interference_loss": np.asarray(self.interference_loss, dtype=np.float64),
                f"{prefix}objectives": np.asarray(self.objectives, dtype=np.float64)}

    def meta(self) -> dict[str, Any]:
        """JSON-able description (what ``from_arrays`` needs besides the arrays)."""
        return {"block": list(self.block), "block_shapes": [list(s) for s in self.block_shapes], "divergence": self.divergence,
                "params": self.params, "stopped_reason": self.stopped_reason, "restart": self.restart,
                "seconds": self.seconds, "timings": dict(self.timings)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], prefix: str = "") -> "HessianFeatures":
        """The result written by ``to_arrays`` and ``meta``."""
        return cls(U=torch.from_numpy(np.array(arrays[f"{prefix}U"])), curvatures=torch.from_numpy(np.array(arrays[f"{prefix}curvatures"])),
                   steep_loss=np.array(arrays[f"{prefix}steep_loss"]), interference_loss=np.array(arrays[f"{prefix}interference_loss"]),
                   block=tuple(meta["block"]), block_shapes=tuple(tuple(int(d) for d in s) for s in meta["block_shapes"]),
                   divergence=str(meta["divergence"]), params=dict(meta["params"]), stopped_reason=meta.get("stopped_reason"),
                   restart=int(meta.get("restart", 0)), objectives=np.array(arrays.get(f"{prefix}objectives", np.zeros(0))),
                   seconds=float(meta.get("seconds", 0.0)), timings=dict(meta.get("timings", {})))

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, metadata) for the result store."""
        return self.to_arrays(), self.meta()

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "HessianFeatures":
        """The result written by ``to_store``."""
        return cls.from_arrays(arrays, meta)

    def summary(self) -> dict[str, Any]:
        """A few JSON-able numbers that say what the result is."""
        last = self.steps_done - 1
        return {"block": list(self.block), "k": self.k, "divergence": self.divergence, "steps_done": self.steps_done,
                "stopped_reason": self.stopped_reason, "n_samples": int(self.curvatures.shape[0]), "restart": self.restart,
                "final_steep_loss": float(self.steep_loss[last]) if last >= 0 else None,
                "final_interference_loss": float(self.interference_loss[last]) if last >= 0 else None,
                "max_activation": [float(v) for v in self.curvatures.reshape(-1, self.k).max(dim=0).values],
                "seconds": round(self.seconds, 3)}
