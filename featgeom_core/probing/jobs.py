"""The probing analysis as a job: ``feature_geometry`` (probes for every chosen layer, real and
shuffled-label, on a worker; the per-layer results land in the store the page reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
from pydantic import Field, field_validator

from featgeom_core.jobs.protocol import JobKind, JobOutput, Report, register
from featgeom_core.models.ids import ModelId
from featgeom_core.params import LayerIndices, Params
from featgeom_core.probing.pipeline import GeometryParams, HookField, LabelSeed, assemble_geometry, probe_key, train_layer_probes
from featgeom_core.probing.probes import InverseRegularisation, Seed

MAX_LAYERS = 256


class FeatureGeometryJob(Params):
    """Probe a named feature set at some layers of a model (no model is loaded to validate)."""

    model: ModelId = Field(..., description="a model id (see `featgeom models`), a local checkpoint directory or a hub id")
    feature_set: str = Field(..., description="a named feature set (see `featgeom feature-sets`)")
    layers: LayerIndices = Field(..., min_length=1, max_length=MAX_LAYERS, description="layer indices (0-based), e.g. [0, 2, 4] or '0,2,4'")
    hook: HookField = "mlp_post"
    C: InverseRegularisation = 1.0
    seed: Seed = 0
    label_seed: LabelSeed = 1

    @field_validator("layers")
    @classmethod
    def _sorted_layers(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @field_validator("feature_set")
    @classmethod
    def _known_feature_set(cls, value: str) -> str:
        from featgeom_core.data import list_feature_sets

        known = sorted(info.name for info in list_feature_sets())
        if value not in known:
            raise ValueError(f"unknown feature set {value!r}; jobs take one of {known}")
        return value

    def geometry(self) -> GeometryParams:
        """The probe settings of this job."""
        return GeometryParams(hook=self.hook, C=self.C, seed=self.seed, label_seed=self.label_seed)


@dataclass(frozen=True)
class GeometrySummary:
    """Per layer (L) x feature (F): held-out ``test_accuracy`` (L, F); per layer: the mean
    off-diagonal cosine of the real and the shuffled-label PSMs and their departure (L,)."""

    feature_names: list[str]
    params: dict[str, Any]
    test_accuracy: np.ndarray
    mean_cosine_real: np.ndarray
    mean_cosine_shuffled: np.ndarray
    departure_cosine: np.ndarray
    ARRAYS: ClassVar[tuple[str, ...]] = ("test_accuracy", "mean_cosine_real", "mean_cosine_shuffled", "departure_cosine")

    def to_store(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {name: getattr(self, name) for name in self.ARRAYS}, {"feature_names": list(self.feature_names), **self.params}

    @classmethod
    def from_store(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "GeometrySummary":
        params = {k: v for k, v in meta.items() if k != "feature_names"}
        return cls(feature_names=list(meta["feature_names"]), params=params,
                   **{name: np.asarray(arrays[name]) for name in cls.ARRAYS})

    def summary(self) -> dict[str, Any]:
        return {
            "layers": self.params.get("layers"),
            "mean_test_accuracy": [round(float(a), 4) for a in self.test_accuracy.mean(axis=1)],
            "mean_cosine_real": [round(float(v), 4) for v in self.mean_cosine_real],
            "mean_cosine_shuffled": [round(float(v), 4) for v in self.mean_cosine_shuffled],
        }


def run_feature_geometry(params: FeatureGeometryJob, report: Report) -> JobOutput:
    """Train the probes on the worker; the per-layer probe results travel back as extra entries."""
    from featgeom_core.activations import extract
    from featgeom_core.data import load_feature_set
    from featgeom_core.errors import InvalidParameter
    from featgeom_core.models import shared_model

    report(0.0, f"loading {params.model}")
    model = shared_model(params.model)
    bad = [layer for layer in params.layers if layer >= model.n_layers]
    if bad:
        raise InvalidParameter(f"layer(s) {bad} out of range: {model.name} has layers 0..{model.n_layers - 1}")
    feature_set = load_feature_set(params.feature_set, tokenizer=model.tokenizer)
    geometry = params.geometry()
    activations = extract(model, feature_set, params.layers, geometry.hook, progress=lambda f, m: report(0.05 + 0.6 * f, m))
    per_layer = train_layer_probes(activations, feature_set, geometry, progress=lambda f, m: report(0.65 + 0.3 * f, m))
    extra = tuple(
        (probe_key(model, feature_set, layer, geometry), arrays, {"model": model.name, "feature_set": feature_set.name, "layer": layer})
        for layer, arrays in per_layer.items()
    )
    result = assemble_geometry(model.name, feature_set, tuple(params.layers), geometry, per_layer)
    summary = GeometrySummary(
        feature_names=list(feature_set.feature_names), params=params.normalised(),
        test_accuracy=result.test_accuracy,
        mean_cosine_real=result.mean_off_diagonal("cosine", "real"),
        mean_cosine_shuffled=result.mean_off_diagonal("cosine", "shuffled_labels"),
        departure_cosine=result.departure("cosine"),
    )
    return JobOutput(summary, fingerprints={"model": model.fingerprint, "features": feature_set.fingerprint()}, extra=extra)


def geometry_link(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The Feature geometry page reads the probes from the store by model, features and layers."""
    return {"model": params["model"], "features": params["feature_set"], "layers": ",".join(map(str, params["layers"])), "hook": params["hook"]}


FEATURE_GEOMETRY = register(JobKind(
    "feature_geometry", "probes for every chosen layer, real and shuffled-label", FeatureGeometryJob, run_feature_geometry,
    GeometrySummary, page="pages/geometry.py", wants_gpu=True, link=geometry_link,
    example={"model": "tiny-native", "feature_set": "art_type", "layers": [0]},
))
