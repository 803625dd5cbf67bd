"""The registry of job kinds: validated params -> a core function run on a worker.

A kind's ``run(params, report)`` returns store entries ``[(key, arrays, meta), ...]``; the
first is the job's result. Workers never write to disk: the app side stores the entries.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np

from featgeom_core.errors import InvalidParameter

Report = Callable[[float, str], None]
StoreEntry = tuple[str, dict[str, np.ndarray], dict[str, Any]]
Params = dict[str, Any]


@dataclass(frozen=True)
class JobKind:
    """One kind of job: how to validate its params, what runs, where its result is shown."""

    name: str
    description: str
    validate: Callable[[Mapping[str, Any]], Params]
    run: Callable[[Params, Report], list[StoreEntry]]
    wants_gpu: bool = False
    page: str | None = None  # the page that shows the result, e.g. "geometry"


def _require(params: Mapping[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise InvalidParameter(f"unknown parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(params)
    if missing:
        raise InvalidParameter(f"missing parameter(s) {sorted(missing)}")


def _as_int(value: Any, name: str, minimum: int | None = None) -> int:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_int_text = isinstance(value, str) and value.strip().lstrip("-").isdigit()
    if not (is_int or is_int_text):
        raise InvalidParameter(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise InvalidParameter(f"{name} must be at least {minimum}, got {number}")
    return number


# ---- feature_geometry: probes for every chosen layer, real and shuffled-label -------------

_GEOMETRY_FIELDS = {"model", "feature_set", "layers", "hook", "C", "seed", "label_seed"}


def validate_geometry(params: Mapping[str, Any]) -> Params:
    """Normalise and check feature_geometry params (no model is loaded here)."""
    from featgeom_core.activations import HOOK_TEMPLATES
    from featgeom_core.data import list_feature_sets
    from featgeom_core.feature_geometry import GeometryParams

    _require(params, _GEOMETRY_FIELDS, {"model", "feature_set", "layers"})
    layers = params["layers"]
    if isinstance(layers, str):
        layers = [part for part in layers.split(",") if part.strip()]
    if not isinstance(layers, (list, tuple)) or not layers:
        raise InvalidParameter("layers must be a non-empty list of layer indices")
    normalised = {
        "model": str(params["model"]),
        "feature_set": str(params["feature_set"]),
        "layers": sorted({_as_int(layer, "layer", 0) for layer in layers}),
        "hook": str(params.get("hook", "mlp_post")),
        "C": float(params.get("C", 1.0)),
        "seed": _as_int(params.get("seed", 0), "seed", 0),
        "label_seed": _as_int(params.get("label_seed", 1), "label_seed", 0),
    }
    known_sets = {info.name for info in list_feature_sets()}
    if normalised["feature_set"] not in known_sets:
        raise InvalidParameter(f"unknown feature set {normalised['feature_set']!r}; jobs take one of {sorted(known_sets)}")
    if normalised["hook"] not in HOOK_TEMPLATES:
        raise InvalidParameter(f"unknown hook {normalised['hook']!r}; use one of {sorted(HOOK_TEMPLATES)}")
    GeometryParams(hook=normalised["hook"], C=normalised["C"], seed=normalised["seed"])
    return normalised


@lru_cache(maxsize=2)
def _worker_model(model_id: str) -> Any:
    from featgeom_core.models import load_model

    return load_model(model_id)


def run_geometry(params: Params, report: Report) -> list[StoreEntry]:
    """Train the probes on the worker; return one store entry per layer plus a summary."""
    from featgeom_core.data import load_feature_set
    from featgeom_core.feature_geometry import GeometryParams, assemble_geometry, probe_key, train_layer_probes
    from featgeom_core.store import result_key

    report(0.0, f"loading {params['model']}")
    model = _worker_model(params["model"])
    bad = [layer for layer in params["layers"] if layer >= model.n_layers]
    if bad:
        raise InvalidParameter(f"layer(s) {bad} out of range: {model.name} has layers 0..{model.n_layers - 1}")
    feature_set = load_feature_set(params["feature_set"], tokenizer=model.tokenizer)
    geometry = GeometryParams(hook=params["hook"], C=params["C"], seed=params["seed"], label_seed=params["label_seed"])
    per_layer = train_layer_probes(model, feature_set, params["layers"], geometry, progress=lambda f, m: report(0.05 + 0.9 * f, m))
    entries: list[StoreEntry] = [
        (probe_key(model, feature_set, layer, geometry), arrays, {"model": model.name, "feature_set": feature_set.name, "layer": layer})
        for layer, arrays in per_layer.items()
    ]
    result = assemble_geometry(model.name, feature_set, tuple(params["layers"]), geometry, per_layer)
    summary = {
        "test_accuracy": result.test_accuracy,
        "mean_cosine_real": result.mean_off_diagonal("cosine", "real"),
        "mean_cosine_shuffled": result.mean_off_diagonal("cosine", "shuffled_labels"),
        "departure_cosine": result.departure("cosine"),
    }
    summary_key = result_key("job:feature_geometry", params, {"model": model.fingerprint, "features": feature_set.fingerprint()})
    return [(summary_key, summary, {"feature_names": list(feature_set.feature_names), **params})] + entries


# ---- diagnostics: for checking a backend (overhead, parallelism, faults) --------------------


def validate_echo(params: Mapping[str, Any]) -> Params:
    """Any JSON-able params; a ``value`` is echoed back."""
    _require(params, {"value"}, set())
    return dict(params)


def run_echo(params: Params, report: Report) -> list[StoreEntry]:
    """The trivial job: returns its params (measures submit-to-result overhead)."""
    from featgeom_core.store import result_key

    return [(result_key("job:diagnostic.echo", params, {}), {}, {"echo": params.get("value")})]


def validate_spin(params: Mapping[str, Any]) -> Params:
    """``iterations`` of pure-Python work (single core), reporting progress ``steps`` times."""
    _require(params, {"iterations", "steps", "tag"}, {"iterations"})
    return {
        "iterations": _as_int(params["iterations"], "iterations", 1),
        "steps": _as_int(params.get("steps", 20), "steps", 1),
        "tag": str(params.get("tag", "")),
    }


def run_spin(params: Params, report: Report) -> list[StoreEntry]:
    """CPU-bound busy work holding one core (for parallel-speedup and fault tests)."""
    from featgeom_core.store import result_key

    per_step = max(1, params["iterations"] // params["steps"])
    total = 0.0
    start = time.perf_counter()
    for step in range(params["steps"]):
        for i in range(per_step):
            total += math.sin(i)
        report((step + 1) / params["steps"], f"step {step + 1}/{params['steps']}")
    return [(result_key("job:diagnostic.spin", params, {}), {"total": np.asarray(total)}, {"seconds": time.perf_counter() - start})]


# ---- energy.sweep: hyper-parameter search + perturbation grid on given target PSMs ----------

_SWEEP_FIELDS = {"targets", "kernels", "similarities", "dims", "lambda_d", "lambda_x", "sigmas", "weights", "restarts", "repeats", "seed", "label"}


def _sweep_target_list(targets: Any) -> list[dict[str, Any]]:
    """Targets as [{name, layer, features (optional names), psms: {similarity: PSM}}];
    {name: {similarity: PSM}} is accepted for a single layer-less sweep."""
    if isinstance(targets, dict):
        targets = [{"name": name, "layer": None, "psms": psms} for name, psms in targets.items()]
    if not isinstance(targets, list) or not targets:
        raise InvalidParameter("targets must be a non-empty list of {name, layer, psms: {similarity: PSM}}")
    normalised = []
    for target in targets:
        if not isinstance(target, dict) or not isinstance(target.get("psms"), dict) or not target["psms"]:
            raise InvalidParameter("each target needs a name, an optional layer and psms: {similarity: PSM}")
        layer = target.get("layer")
        features = [str(f) for f in target.get("features", [])]
        normalised.append({"name": str(target.get("name", "real")), "layer": None if layer is None else _as_int(layer, "layer", 0),
                           "features": features, "psms": target["psms"]})
    return normalised


def validate_sweep(params: Mapping[str, Any]) -> Params:
    """Targets (see ``_sweep_target_list``) and the grid; checked like the engine checks them."""
    from featgeom_core.energy import SweepGrid
    from featgeom_core.energy.joint import ReoptConfig, check_target

    _require(params, _SWEEP_FIELDS, {"targets"})
    targets = _sweep_target_list(params["targets"])
    grid = SweepGrid(
        kernels=tuple(params.get("kernels", SweepGrid.kernels)), similarities=tuple(params.get("similarities", SweepGrid.similarities)),
        dims=tuple(int(d) for d in params.get("dims", SweepGrid.dims)), lambda_d=tuple(float(v) for v in params.get("lambda_d", SweepGrid.lambda_d)),
        lambda_x=tuple(float(v) for v in params.get("lambda_x", SweepGrid.lambda_x)), sigmas=tuple(float(v) for v in params.get("sigmas", SweepGrid.sigmas)),
        weights=str(params.get("weights", "learned")),
    )
    for target in targets:
        sizes = {check_target(np.asarray(m, dtype=float)).shape[0] for m in target["psms"].values()}
        if len(sizes) != 1:
            raise InvalidParameter(f"the PSMs of target {target['name']!r} (layer {target['layer']}) differ in size")
        n = sizes.pop()
        if target["features"] and len(target["features"]) != n:
            raise InvalidParameter(f"target {target['name']!r} (layer {target['layer']}) names {len(target['features'])} features for an {n} x {n} PSM")
        grid.joint_configs(n)  # validates every configuration for this N
    if not grid.kernels or not grid.similarities or not grid.lambda_d or not grid.lambda_x or not grid.sigmas:
        raise InvalidParameter("the sweep grid is empty")
    for lx in grid.lambda_x:
        for sigma in grid.sigmas:
            ReoptConfig(lx, sigma)
    return {
        "targets": [{**t, "psms": {kind: np.asarray(m, dtype=float).round(12).tolist() for kind, m in t["psms"].items()}} for t in targets],
        "kernels": list(grid.kernels), "similarities": list(grid.similarities), "dims": list(grid.dims),
        "lambda_d": list(grid.lambda_d), "lambda_x": list(grid.lambda_x), "sigmas": list(grid.sigmas), "weights": grid.weights,
        "restarts": _as_int(params.get("restarts", 8), "restarts", 1), "repeats": _as_int(params.get("repeats", 3), "repeats", 1),
        "seed": _as_int(params.get("seed", 0), "seed", 0), "label": str(params.get("label", "")),
    }


def run_sweep_job(params: Params, report: Report) -> list[StoreEntry]:
    """The whole grid (one batched problem per N); rows come back as JSON metadata, and the best
    fit per (target, layer, similarity, kernel) as arrays ``psm_k``, ``features_k``, ``weights_k``
    and ``target_k``, k being the best row's ``best_index``."""
    from featgeom_core.energy import SweepGrid, SweepTarget, best_configurations, run_sweep
    from featgeom_core.store import result_key

    grid = SweepGrid(
        kernels=tuple(params["kernels"]), similarities=tuple(params["similarities"]), dims=tuple(params["dims"]),
        lambda_d=tuple(params["lambda_d"]), lambda_x=tuple(params["lambda_x"]), sigmas=tuple(params["sigmas"]), weights=params["weights"],
    )
    targets = [
        SweepTarget(t["name"], {kind: np.asarray(m) for kind, m in t["psms"].items() if kind in grid.similarities}, t["layer"])
        for t in params["targets"]
    ]
    sweep = run_sweep(targets, grid, restarts=params["restarts"], repeats=params["repeats"], seed=params["seed"], progress=report)
    best = [{**row, "best_index": k} for k, row in enumerate(best_configurations(sweep.rows))]
    arrays: dict[str, np.ndarray] = {}
    for row in best:
        fit = sweep.joints[row["fit"]]
        k = row["best_index"]
        arrays.update({f"psm_{k}": fit.psm, f"features_{k}": fit.features, f"weights_{k}": fit.weights, f"target_{k}": fit.target})
    names = {str(t["layer"]): t["features"] for t in params["targets"] if t["features"]}
    return [(result_key("job:energy.sweep", params, {}), arrays, {"rows": sweep.rows, "best": best, "label": params["label"], "names": names})]


# ---- energy.fit: one joint optimisation and its reference configuration --------------------

_FIT_FIELDS = {"target", "features", "dim", "similarity", "kernel", "lambda_d", "s", "weights", "weight_ratio", "restarts", "seed", "label"}


def validate_fit(params: Mapping[str, Any]) -> Params:
    """A target PSM (N x N list), optional feature names, and one joint configuration."""
    from featgeom_core.energy.joint import JointConfig, check_target
    from featgeom_core.energy.reference import validate_sizes

    _require(params, _FIT_FIELDS, {"target", "dim"})
    target = check_target(np.asarray(params["target"], dtype=float))
    n = target.shape[0]
    features = [str(f) for f in params.get("features", [])]
    if features and len(features) != n:
        raise InvalidParameter(f"{len(features)} feature names for an {n} x {n} target")
    config = JointConfig(
        dim=_as_int(params["dim"], "dim", 1), similarity=str(params.get("similarity", "cosine")), kernel=str(params.get("kernel", "riesz")),  # type: ignore[arg-type]
        lambda_d=float(params.get("lambda_d", 100.0)), s=float(params.get("s", 1.0)), weights=str(params.get("weights", "learned")),  # type: ignore[arg-type]
        weight_ratio=float(params.get("weight_ratio", 10.0)),
    )
    validate_sizes(n, config.dim)
    return {
        "target": target.round(12).tolist(), "features": features, "dim": config.dim, "similarity": config.similarity,
        "kernel": config.kernel, "lambda_d": config.lambda_d, "s": config.s, "weights": config.weights, "weight_ratio": config.weight_ratio,
        "restarts": _as_int(params.get("restarts", 16), "restarts", 1), "seed": _as_int(params.get("seed", 0), "seed", 0),
        "label": str(params.get("label", "")),
    }


def run_fit(params: Params, report: Report) -> list[StoreEntry]:
    """``joint_optimize`` and ``matched_reference``; the joint result's arrays, plus reference_psm
    (N, N) and reference_features (N, dim)."""
    from featgeom_core.energy import joint_optimize, matched_reference
    from featgeom_core.store import result_key

    target = np.asarray(params["target"])
    report(0.1, f"joint optimisation, {params['restarts']} restarts")
    joint = joint_optimize(target, params["dim"], params["similarity"], params["kernel"], params["lambda_d"], restarts=params["restarts"],
                           seed=params["seed"], weights=params["weights"], s=params["s"], weight_ratio=params["weight_ratio"])
    report(0.7, "reference configuration")
    reference = matched_reference(target, params["dim"], params["kernel"], s=params["s"], similarity=params["similarity"],
                                  restarts=params["restarts"], seed=params["seed"])
    arrays, meta = joint.to_store()
    arrays.update({"reference_psm": reference.psm, "reference_features": reference.reference.X})
    meta.update({"reference_distance": reference.distance, "reference_energy": reference.reference.energy,
                 "features": params["features"], "label": params["label"]})
    return [(result_key("job:energy.fit", params, {}), arrays, meta)]


JOB_KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("feature_geometry", "probes for every chosen layer, real and shuffled-label", validate_geometry, run_geometry, wants_gpu=True, page="geometry"),
        JobKind("energy.fit", "one joint optimisation of abstract features, with its reference", validate_fit, run_fit, page="energy"),
        JobKind("energy.sweep", "energy hyper-parameter search and perturbation grid", validate_sweep, run_sweep_job, wants_gpu=True, page="perturbation"),
        JobKind("diagnostic.echo", "trivial job: returns its params", validate_echo, run_echo),
        JobKind("diagnostic.spin", "CPU-bound busy work on one core", validate_spin, run_spin),
    )
}


def job_kind(name: str) -> JobKind:
    """The registered kind, or an InvalidParameter naming the known kinds."""
    if name not in JOB_KINDS:
        raise InvalidParameter(f"unknown job kind {name!r}; known: {', '.join(JOB_KINDS)}")
    return JOB_KINDS[name]
