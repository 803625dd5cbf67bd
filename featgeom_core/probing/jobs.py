"""The probing analysis as a job: ``feature_geometry`` (probes for every chosen layer, real and
shuffled-label, on a worker; the per-layer results land in the store the page reads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featgeom_core.jobs.protocol import JobKind, register
from featgeom_core.probing.params import FeatureGeometryParams
from featgeom_core.probing.result import GeometrySummary
from featgeom_core.probing.run import run_feature_geometry


def geometry_link(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The Feature geometry page reads the probes from the store by model, features and layers."""
    return {
        "model": params["model"],
        "features": params["feature_set"],
        "layers": ",".join(map(str, params["layers"])),
        "hook": params["hook"],
    }


FEATURE_GEOMETRY = register(
    JobKind(
        "feature_geometry",
        "probes for every chosen layer, real and shuffled-label",
        FeatureGeometryParams,
        run_feature_geometry,
        GeometrySummary,
        page="pages/geometry.py",
        wants_gpu=True,
        link=geometry_link,
        example={"model": "tiny-native", "feature_set": "art_type", "layers": [0]},
    )
)
