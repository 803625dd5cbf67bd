"""Results written before the codec (store formats 0 and 1) read as today's result types.

featgeom 0.1 stored each result type through its own hand-written ``to_store``; format 2 stores
every result through :mod:`featgeom_core.codec`. :func:`upgrade` turns an old entry's arrays and
metadata into the codec's layout for its type, so a stored result from before the change still
opens (from its job's record, or as a cached dependency such as a trained model). Each converter
is a pure function of (arrays, meta); a type absent here stored the codec's layout already.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from featgeom_core.store import CODEC_FORMAT

Arrays = dict[str, np.ndarray]
Converter = Callable[[Arrays, dict[str, Any]], tuple[Arrays, dict[str, Any]]]


def upgrade(
    result_type: type, stored_format: int, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> tuple[Arrays, dict[str, Any]]:
    """(arrays, meta) of ``result_type`` in the codec's layout, from an entry of ``stored_format``."""
    arrays, meta = dict(arrays), dict(meta)
    if stored_format >= CODEC_FORMAT:
        return arrays, meta
    converter = FORMAT_1.get(result_type.__name__)
    return converter(arrays, meta) if converter is not None else (arrays, meta)


FORMAT_1: dict[str, Converter] = {}
"""Converters from the layouts of formats 0 and 1 (the same files), by result type name."""


def _moved(arrays: Mapping[str, np.ndarray], renames: Mapping[str, str]) -> Arrays:
    """``arrays`` with each name in ``renames`` moved to its new name (others dropped)."""
    return {new: np.asarray(arrays[old]) for old, new in renames.items() if old in arrays}


def _with_prefix(arrays: Mapping[str, np.ndarray], old: str, new: str) -> Arrays:
    """Every array named ``old<rest>`` as ``new<rest>``."""
    return {new + name[len(old) :]: np.asarray(value) for name, value in arrays.items() if name.startswith(old)}


def _geometry_summary(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1: the four arrays at the top, the job's params flattened into the metadata beside the names
    params = {k: v for k, v in meta.items() if k != "feature_names"}
    return arrays, {"feature_names": list(meta["feature_names"]), "params": params}


_JOINT_ARRAYS = ("target", "features", "weights", "psm", "objectives", "trace")


def _energy_fit(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1: the joint fit's arrays and fields flat beside the reference's; names under "features"
    new = {f"joint/{name}": arrays[name] for name in _JOINT_ARRAYS}
    new.update(_moved(arrays, {"reference_psm": "reference_psm", "reference_features": "reference_features"}))
    joint = {"config": meta["config"], "error": meta["error"], "energy": meta["energy"], "objective": meta["objective"]}
    return new, {
        "joint": joint,
        "reference_distance": meta["reference_distance"],
        "reference_energy": meta["reference_energy"],
        "feature_names": list(meta.get("features", [])),
        "label": meta.get("label", ""),
    }


def _energy_sweep(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1: best configuration k's arrays as psm_k, features_k, weights_k, target_k
    count = max((int(row["best_index"]) + 1 for row in meta["best"] if "best_index" in row), default=0)
    new: Arrays = {}
    for k in range(count):
        for name in ("psm", "features", "weights", "target"):
            new[f"fits/{k}/{name}"] = arrays[f"{name}_{k}"]
    return new, {
        "rows": meta["rows"],
        "best": meta["best"],
        "fits": [{} for _ in range(count)],
        "label": meta.get("label", ""),
        "names": meta.get("names", {}),
    }


_SPARSE_CODE_ARRAYS = {
    "dictionary": "dictionary",
    "codes_data": "codes/data",
    "codes_indices": "codes/indices",
    "codes_indptr": "codes/indptr",
    "codes_shape": "codes/shape",
    "center": "center",
}
_SET_ARRAYS = ("usage", "histogram", "histogram_edges", "top_rows", "top_values")


def _model_sparsity(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1: set k's arrays prefixed s{k}_, the code's CSR parts as codes_data etc., its histories as arrays
    new = _moved(arrays, {"token_text": "token_text", "token_position": "token_position", "token_id": "token_id"})
    sets = []
    for k, entry in enumerate(meta["sets"]):
        prefix = f"s{k}_"
        new.update({f"sets/{k}/code/{to}": arrays[prefix + old] for old, to in _SPARSE_CODE_ARRAYS.items()})
        new.update({f"sets/{k}/{name}": arrays[prefix + name] for name in _SET_ARRAYS})
        code = {
            "lam": entry["lam"],
            "method": entry["method"],
            "lambdas": [float(v) for v in arrays[f"{prefix}lambdas"]],
            "losses": [float(v) for v in arrays[f"{prefix}losses"]],
        }
        sets.append({"name": entry["name"], "code": code, "metrics": entry["metrics"], "calibrated_a": entry.get("calibrated_a")})
    return new, {
        "model": meta["model"],
        "hook": meta["hook"],
        "sets": sets,
        "token_strings": meta["token_strings"],
        "texts": meta["texts"],
        "vocabulary": meta["vocabulary"],
        "calibration": meta.get("calibration", []),
    }


def _hessian_features(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1: token sets' table columns under train/ and heldout/, their strings and texts as train_strings etc.
    new = _with_prefix(arrays, "features/", "features/")
    new.update(_moved(arrays, {"inputs": "inputs", "heldout_curvatures": "heldout_curvatures"}))
    out: dict[str, Any] = {
        "features": meta["features"],
        "model": meta["model"],
        "description": meta["description"],
        "output": meta.get("output", "regression"),
        "timings": meta.get("timings", {}),
    }
    for old, field in (("train", "train_tokens"), ("heldout", "heldout_tokens")):
        if f"{old}_strings" in meta:
            table = _with_prefix(arrays, f"{old}/", f"{field}/table/")
            new.update(table)
            out[field] = {
                "table": {name.rsplit("/", 1)[1]: None for name in table},
                "strings": meta[f"{old}_strings"],
                "texts": meta[f"{old}_texts"],
            }
    return new, out


def _interaction_graph(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1: basis kind's matrices as {kind}/C/{k}, C_pinv, values, E; the graph's per-layer kinds and constant flags as lists
    new: Arrays = {}
    results: dict[str, Any] = {}
    for kind, entry in meta["bases"].items():
        graph = entry["graph"]
        layers = list(graph["node_layers"])
        for k in range(len(layers)):
            for name in ("C", "C_pinv", "values"):
                new[f"results/{kind}/graph/bases/{k}/{name}"] = arrays[f"{kind}/{name}/{k}"]
        for k in range(len(layers) - 1):
            new[f"results/{kind}/graph/edges/{k}"] = arrays[f"{kind}/E/{k}"]
        bases = [
            {"node_layer": name, "kind": graph["kinds"][k], "constant_first": bool(graph["constant_first"][k])}
            for k, name in enumerate(layers)
        ]
        results[kind] = {
            "graph": {
                "model": graph["model"],
                "node_layers": layers,
                "bases": bases,
                "edges": [None] * (len(layers) - 1),
                "params": graph["params"],
                "n_samples": graph["n_samples"],
                "timings": graph.get("timings", {}),
            },
            "node_curves": entry["node_curves"],
            "bisect": entry["bisect"],
            "fourier": entry.get("fourier", []),
        }
    return new, {
        "model": meta["model"],
        "checkpoint": meta["checkpoint"],
        "metric": meta["metric"],
        "base_score": meta["base_score"],
        "results": results,
        "timings": meta.get("timings", {}),
    }


def _trained_model(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    # 0.1 wrote state/<name> arrays as the codec does; only the metadata's state listing is new
    names = {name[len("state/") :]: None for name in arrays if name.startswith("state/")}
    return arrays, {**meta, "state": names}


def _spin(arrays: Arrays, meta: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
    return {}, {"total": float(np.asarray(arrays["total"])), "seconds": meta["seconds"]}


FORMAT_1.update(
    {
        "GeometrySummary": _geometry_summary,
        "EnergyFitResult": _energy_fit,
        "EnergySweepResult": _energy_sweep,
        "ModelSparsityResult": _model_sparsity,
        "HessianFeaturesResult": _hessian_features,
        "InteractionGraphResult": _interaction_graph,
        "TrainedModel": _trained_model,
        "SpinResult": _spin,
    }
)
