"""The thesis's main path (sections 3.1-3.2): activations -> probes (real and shuffled-label) ->
PSMs with controls, cached.

Probe results are cached per layer, so adding a layer trains only that layer; PSMs and
de-duplication are cheap and computed on demand from the cached directions.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Mapping, Sequence

import numpy as np

from pydantic import Field

from featgeom_core.activations import Hook, extract
from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.models import LoadedModel
from featgeom_core.params import Params
from featgeom_core.probing.probes import InverseRegularisation, ProbeParams, Seed, shuffled_label_control, train_probes
from featgeom_core.probing.similarity import dedup, permuted_control, psm, psm_departure
from featgeom_core.store import Store, result_key

Progress = Callable[[float, str], None]
CONTROLS = ("real", "permuted", "shuffled_labels")
KINDS = ("cosine", "rbf")


HookField = Annotated[Hook, Field(description="where activations are read: mlp_post (blocks.l.mlp.hook_post) or resid_post (blocks.l.hook_resid_post)")]
LabelSeed = Annotated[int, Field(ge=0, le=2**31 - 1, description="seed of the label shuffle behind the shuffled-label control probes")]


class GeometryParams(Params):
    """Everything that shapes a geometry view besides the model, the feature set and the layers."""

    hook: HookField = "mlp_post"
    C: InverseRegularisation = 1.0
    seed: Seed = 0
    rbf_c: float = Field(200.0, gt=0, description="RBF width c in exp(-|x_i - x_j|^2 / c), in squared activation units")
    permutation_seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the permuted control (plus the layer index)")
    label_seed: LabelSeed = 1


@dataclass
class GeometryResult:
    """Probe directions and their PSMs for L layers x F features.

    ``directions[control]`` (L, F, d); ``psms[(kind, control)]`` (L, F, F);
    ``test_accuracy`` / ``test_balanced_accuracy`` / ``shuffled_test_accuracy`` (L, F).
    """

    model: str
    feature_set: str
    layers: tuple[int, ...]
    feature_names: tuple[str, ...]
    params: GeometryParams
    directions: dict[str, np.ndarray]
    psms: dict[tuple[str, str], np.ndarray]
    test_accuracy: np.ndarray
    test_balanced_accuracy: np.ndarray
    shuffled_test_accuracy: np.ndarray
    notes: dict[str, str] = field(default_factory=dict)
    cached_layers: tuple[int, ...] = ()

    def departure(self, kind: str = "cosine") -> np.ndarray:
        """Per layer: mean |off-diagonal| difference between the real and shuffled-label PSMs (L,)."""
        real, shuffled = self.psms[(kind, "real")], self.psms[(kind, "shuffled_labels")]
        return np.asarray([psm_departure(real[i], shuffled[i]) for i in range(len(self.layers))])

    def mean_off_diagonal(self, kind: str, control: str) -> np.ndarray:
        """Per layer: the mean off-diagonal similarity (L,)."""
        matrices = self.psms[(kind, control)]
        off = ~np.eye(matrices.shape[-1], dtype=bool)
        return matrices[:, off].mean(axis=1) if off.any() else np.zeros(len(self.layers))

    def deduplicated(self, threshold: float | None, kind: str = "cosine") -> tuple[list[list[int]], list[list[tuple[int, int, float]]]]:
        """Per layer: kept feature indices and dropped pairs for de-duplication on the real PSM."""
        if threshold is None:
            every = list(range(len(self.feature_names)))
            return [every for _ in self.layers], [[] for _ in self.layers]
        results = [dedup(self.psms[(kind, "real")][i], threshold) for i in range(len(self.layers))]
        return [r.kept for r in results], [r.dropped for r in results]

    def psms_at(self, layer: int, kept: Sequence[int] | None = None, controls: Sequence[str] = ("real", "permuted")) -> dict[str, dict[str, np.ndarray]]:
        """One layer's PSMs restricted to the ``kept`` features (e.g. after de-duplication):
        {control: {"cosine" | "rbf": (N, N)}}; the energy pages' targets."""
        i = self.layers.index(layer)
        keep = list(range(len(self.feature_names))) if kept is None else list(kept)
        return {control: {kind: self.psms[(kind, control)][i][np.ix_(keep, keep)] for kind in KINDS} for control in controls}

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings that reproduce this result."""
        return {"model": self.model, "feature_set": self.feature_set, "layers": list(self.layers), **self.params.model_dump()}

    def psm_csv(self) -> str:
        """All PSMs in long form: layer, similarity, control, feature_i, feature_j, value."""
        lines = ["layer,similarity,control,feature_i,feature_j,value"]
        for (kind, control), matrices in self.psms.items():
            for li, layer in enumerate(self.layers):
                for i, a in enumerate(self.feature_names):
                    for j, b in enumerate(self.feature_names):
                        lines.append(f"{layer},{kind},{control},{_csv(a)},{_csv(b)},{matrices[li, i, j]:.6g}")
        return "\n".join(lines) + "\n"

    def directions_npz(self) -> bytes:
        """NPZ bytes: directions_<control> (L, F, d), layers, feature_names, accuracies, settings JSON."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            layers=np.asarray(self.layers),
            feature_names=np.asarray(self.feature_names, dtype=str),
            test_accuracy=self.test_accuracy,
            settings=np.asarray(json.dumps(self.settings())),
            **{f"directions_{control}": values for control, values in self.directions.items()},
        )
        return buffer.getvalue()


def _csv(text: str) -> str:
    return f'"{text}"' if "," in text or '"' in text else text


def probe_key(model: LoadedModel, feature_set: FeatureSet, layer: int, params: GeometryParams) -> str:
    """Store key of one layer's probe results (real and shuffled-label) for these inputs."""
    return result_key(
        "probes",
        {"layer": layer, "hook": params.hook, "C": params.C, "seed": params.seed, "label_seed": params.label_seed},
        {"model": model.fingerprint, "features": feature_set.fingerprint()},
    )


def train_layer_probes(
    activations: Mapping[int, np.ndarray], feature_set: FeatureSet, params: GeometryParams = GeometryParams(), device: str = "auto",
    progress: Progress | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Real and shuffled-label probes on activations {layer: (n, d)}, one batched problem each.

    Returns {layer: arrays} with ``directions`` (F, d), ``bias``, ``test_accuracy``,
    ``test_balanced_accuracy``, ``shuffled_directions`` and ``shuffled_test_accuracy``.
    """
    report = progress or (lambda fraction, message: None)
    probe_params = ProbeParams(C=params.C, seed=params.seed)
    report(0.0, f"training {len(activations) * feature_set.n_features} probes")
    real = train_probes(activations, feature_set, probe_params, device)
    report(0.5, "training shuffled-label control probes")
    shuffled = shuffled_label_control(activations, feature_set, probe_params, params.label_seed, device)
    return {
        layer: {
            "directions": real.directions[i],
            "bias": real.bias[i],
            "test_accuracy": real.test_accuracy[i],
            "test_balanced_accuracy": real.test_balanced_accuracy[i],
            "shuffled_directions": shuffled.directions[i],
            "shuffled_test_accuracy": shuffled.test_accuracy[i],
        }
        for i, layer in enumerate(real.layers)
    }


def cached_layers(model: LoadedModel, feature_set: FeatureSet, layers: Sequence[int], params: GeometryParams, store: Store) -> list[int]:
    """The layers whose probe results are already in ``store``."""
    return [layer for layer in layers if store.contains(probe_key(model, feature_set, layer, params))]


def feature_geometry(
    model: LoadedModel, feature_set: FeatureSet, layers: Sequence[int], params: GeometryParams = GeometryParams(), *,
    store: Store | None = None, progress: Progress | None = None, device: str = "auto",
) -> GeometryResult:
    """Probe every feature at every layer (and on shuffled labels), then build all PSMs. ``store``
    caches the activations and the per-layer probes."""
    layers = tuple(sorted(set(int(layer) for layer in layers)))
    report = progress or (lambda fraction, message: None)
    keys = {layer: probe_key(model, feature_set, layer, params) for layer in layers}
    per_layer: dict[int, dict[str, np.ndarray]] = {}
    if store is not None:
        for layer in layers:
            cached = store.get(keys[layer], stale_as_missing=True)
            if cached is not None:
                per_layer[layer] = cached.arrays
    from_cache = tuple(per_layer)
    missing = [layer for layer in layers if layer not in per_layer]
    if missing:
        activations = extract(model, feature_set, missing, params.hook, store=store, progress=lambda f, m: report(0.7 * f, m))
        computed = train_layer_probes(activations, feature_set, params, device, lambda f, m: report(0.7 + 0.25 * f, m))
        for layer, arrays in computed.items():
            if store is not None:
                store.put(keys[layer], arrays, {"model": model.name, "feature_set": feature_set.name, "layer": layer})
            per_layer[layer] = arrays
    return assemble_geometry(model.name, feature_set, layers, params, per_layer, from_cache, report)


def assemble_geometry(
    model_name: str,
    feature_set: FeatureSet,
    layers: tuple[int, ...],
    params: GeometryParams,
    per_layer: dict[int, dict[str, np.ndarray]],
    from_cache: tuple[int, ...] = (),
    progress: Progress | None = None,
) -> GeometryResult:
    """Controls and PSMs from per-layer probe results (cheap: no model involved)."""
    report = progress or (lambda fraction, message: None)
    report(0.95, "building PSMs")
    real_dirs = np.stack([per_layer[layer]["directions"] for layer in layers])
    directions = {
        "real": real_dirs,
        "permuted": np.stack([permuted_control(real_dirs[i], params.permutation_seed + layer) for i, layer in enumerate(layers)]),
        "shuffled_labels": np.stack([per_layer[layer]["shuffled_directions"] for layer in layers]),
    }
    psms = {
        (kind, control): np.stack([psm(values[i], kind, params.rbf_c) for i in range(len(layers))])
        for kind in KINDS
        for control, values in directions.items()
    }
    report(1.0, "done")
    return GeometryResult(
        model=model_name,
        feature_set=feature_set.name,
        layers=layers,
        feature_names=feature_set.feature_names,
        params=params,
        directions=directions,
        psms=psms,
        test_accuracy=np.stack([per_layer[layer]["test_accuracy"] for layer in layers]),
        test_balanced_accuracy=np.stack([per_layer[layer]["test_balanced_accuracy"] for layer in layers]),
        shuffled_test_accuracy=np.stack([per_layer[layer]["shuffled_test_accuracy"] for layer in layers]),
        notes=dict(feature_set.notes),
        cached_layers=from_cache,
    )


