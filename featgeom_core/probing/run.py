"""The probing job kind's computation: validated params in, a result out."""

from __future__ import annotations

from featgeom_core.activations import extract
from featgeom_core.errors import InvalidParameter
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.probing.params import FeatureGeometryParams
from featgeom_core.probing.pipeline import (
    assemble_geometry,
    probe_key,
    train_layer_probes,
)
from featgeom_core.probing.result import GeometrySummary
from featgeom_core.progress import Progress, sub_progress


def run_feature_geometry(params: FeatureGeometryParams, report: Progress) -> JobOutput[GeometrySummary]:
    """The ``feature_geometry`` job: probes for every chosen layer; the per-layer probe results
    travel back as extra entries (what the Feature geometry page reads)."""
    from featgeom_core.data import load_feature_set
    from featgeom_core.models import shared_model

    report(0.0, f"loading {params.model}")
    model = shared_model(params.model)
    bad = [layer for layer in params.layers if layer >= model.n_layers]
    if bad:
        raise InvalidParameter(f"layer(s) {bad} out of range: {model.name} has layers 0..{model.n_layers - 1}")
    feature_set = load_feature_set(params.feature_set, tokenizer=model.tokenizer)
    geometry = params.geometry()
    activations = extract(model, feature_set, params.layers, geometry.hook, progress=sub_progress(report, 0.05, 0.65))
    per_layer = train_layer_probes(activations, feature_set, geometry, progress=sub_progress(report, 0.65, 0.95))
    extra = tuple(
        (probe_key(model, feature_set, layer, geometry), arrays, {"model": model.name, "feature_set": feature_set.name, "layer": layer})
        for layer, arrays in per_layer.items()
    )
    result = assemble_geometry(model.name, feature_set, tuple(params.layers), geometry, per_layer)
    summary = GeometrySummary(
        feature_names=list(feature_set.feature_names),
        params=params.normalised(),
        test_accuracy=result.test_accuracy,
        mean_cosine_real=result.mean_off_diagonal("cosine", "real"),
        mean_cosine_shuffled=result.mean_off_diagonal("cosine", "shuffled_labels"),
        departure_cosine=result.departure("cosine"),
        quality=result.quality,
    )
    return JobOutput(summary, fingerprints={"model": model.fingerprint, "features": feature_set.fingerprint()}, extra=extra)
