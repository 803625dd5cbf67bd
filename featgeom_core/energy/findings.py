"""The thesis's energy findings (paper 000, sections 4.2 and 4.3, conclusions 3 and 4): real
features end closer to the target after re-optimisation than permuted ones with cosine similarity,
not with RBF; minima are narrow; the learned importance weights are about equal. Measured with the
Perturbation page's sweep (its default grid, both controls, 5 seeds each) on the offline models."""

from __future__ import annotations

from typing import Any

import numpy as np

from featgeom_core.energy.result import EnergySweepResult
from featgeom_core.energy.sweep import SelectionRule
from featgeom_core.findings.declare import Finding, Measure, Measurement, Verdict, computed, declare, share_verdict
from featgeom_core.findings.params import DEFAULT_LEDGER_MODELS
from featgeom_core.params import default_layers
from featgeom_core.progress import Progress, sub_progress
from featgeom_core.store import Store

FEATURES = "athlete_sport"
"""The thesis's knowledge set (Figures 7, 8 and 10)."""
NARROW_RATIO = 1.5
"""Minima are narrow when the mean re-optimisation distance at sigma = 0.1 is at least this times that at 0.01."""
EQUAL_WEIGHTS = 1.5
"""Learned importance weights are 'about equal' when the largest is at most this times the smallest."""


def sweep_layers(n_layers: int) -> list[int]:
    """Two layers as the thesis's 8 and 15 of 16: the middle and the last of the default layers."""
    layers = default_layers(n_layers)
    return sorted({layers[len(layers) // 2], layers[-1]})


def sweep(
    model_id: str, store: Store, report: Progress, rule: SelectionRule = "joint_fit"
) -> tuple[EnergySweepResult, list[dict[str, Any]]]:
    """The Perturbation page's sweep for :data:`FEATURES` at :func:`sweep_layers` (stored like the page's), and its
    summary on the configurations ``rule`` picks."""
    from featgeom_core.data import load_feature_set
    from featgeom_core.energy.controls import control_summary
    from featgeom_core.energy.jobs import ENERGY_SWEEP
    from featgeom_core.energy.params import SweepGrid
    from featgeom_core.models import shared_model
    from featgeom_core.probing import ControlParams, GeometryParams
    from featgeom_core.probing.controls import controls_by_layer

    model = shared_model(model_id)
    feature_set = load_feature_set(FEATURES, tokenizer=model.tokenizer)
    layers = sweep_layers(model.n_layers)
    geometry, by_layer, _ = controls_by_layer(
        model, feature_set, layers, GeometryParams(), ControlParams(), store=store, progress=sub_progress(report, 0.0, 0.4)
    )
    similarities = list(SweepGrid().similarities)
    params = ENERGY_SWEEP.parse(
        {
            "targets": [spec for layer in by_layer for spec in layer.sweep_targets(similarities)],
            "similarities": similarities,
            "label": f"{model_id} · {FEATURES} · layers {','.join(map(str, layers))} · mlp_post",
            "probe_warning": geometry.warning() or "",
        }
    )
    result = computed(ENERGY_SWEEP, params, store, sub_progress(report, 0.4, 1.0))
    return result, control_summary(result.rows, rule=rule)


def _cells(summary: list[dict[str, Any]], similarity: str, control: str, chosen: dict[int, str] | None = None) -> str:
    return "; ".join(
        f"layer {row['layer']}{' (' + chosen[row['layer']] + ')' if chosen else ''}: real {row['real']:.4f}, "
        f"{control} {row[control]:.4f} [{row[control + '_low']:.4f}, {row[control + '_high']:.4f}]"
        for row in summary
        if row["similarity"] == similarity and control in row
    )


def chosen_configurations(result: EnergySweepResult, similarity: str, rule: SelectionRule) -> dict[int, str]:
    """Per layer, the configurations ``rule`` picks for ``similarity``, as 'kernel m=dim lambda_d=..., ...'."""
    from featgeom_core.energy.sweep import configuration_of, curves_of_best

    chosen = {}
    for layer in sorted({row["layer"] for row in result.rows}):
        configurations = sorted({configuration_of(row) for row in curves_of_best(result.rows, similarity, layer, rule)})
        chosen[layer] = ", ".join(f"{kernel} m={dim} lambda_d={ld:g} lambda_x={lx:g}" for kernel, dim, ld, lx in configurations)
    return chosen


def against_band(similarity: str, control: str, inside: bool, rule: SelectionRule = "joint_fit") -> Measure:
    """The measure: at each layer, is the real target's distance after re-optimisation below the
    control's whole band (``inside`` False), or inside it, i.e. not separated (``inside`` True), on
    the curves of the configurations ``rule`` picks?"""
    where = "inside" if inside else "below"

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result, summary = sweep(model_id, store, report, rule)
        chosen = chosen_configurations(result, similarity, rule) if rule == "reoptimised" else None
        rows = [row for row in summary if row["similarity"] == similarity and control in row]
        low, high = control + "_low", control + "_high"
        holds = [(row[low] <= row["real"] <= row[high]) if inside else row["real"] < row[low] for row in rows]
        return Measurement(
            ours=_cells(summary, similarity, control, chosen),
            verdict=share_verdict(holds),
            note=f"real {where} the {control} band at {sum(holds)} of {len(holds)} layers",
            value=float(np.mean([row["real_minus_" + control] for row in rows])),
            spread=f"bands: central 95% over 5 seeds x 3 noise draws; {len(rows)} layers",
        )

    return measure


def narrow_minima(rule: SelectionRule = "joint_fit") -> Measure:
    """The measure: the real targets' mean re-optimisation distance at sigma = 0.1 against 0.01, per
    layer and similarity, on the configurations ``rule`` picks."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        from featgeom_core.energy.sweep import curves_of_best

        result, _ = sweep(model_id, store, report)
        ratios: list[float] = []
        cells: list[str] = []
        layers = sorted({row["layer"] for row in result.rows})
        for layer in layers:
            for similarity in ("cosine", "rbf"):
                curve = [row for row in curves_of_best(result.rows, similarity, layer, rule) if row["target"] == "real"]
                at = {sigma: np.mean([row["distance"] for row in curve if np.isclose(row["sigma"], sigma)]) for sigma in (0.01, 0.1)}
                ratios.append(float(at[0.1] / at[0.01]))
                cells.append(f"layer {layer} {similarity}: {at[0.01]:.4f} -> {at[0.1]:.4f} (x{ratios[-1]:.1f})")
        narrow = [ratio >= NARROW_RATIO for ratio in ratios]
        return Measurement(
            ours="; ".join(cells),
            verdict=share_verdict(narrow),
            note=f"distance at sigma 0.1 at least {NARROW_RATIO}x that at 0.01 in {sum(narrow)} of {len(narrow)} cases",
            value=float(min(ratios)),
            spread=f"{len(ratios)} (layer, similarity) cases, each the mean over "
            + ("kernels and 3 noise draws" if rule == "joint_fit" else "3 noise draws of the one chosen configuration"),
        )

    return measure


def weights_ignored(model_id: str, store: Store, report: Progress) -> Measurement:
    """The measure: the largest over smallest learned importance weight of each real target's best fit."""
    result, _ = sweep(model_id, store, report)
    ratios = []
    for best in result.best:
        if best["target"] == "real" and "best_index" in best:
            weights = np.asarray(result.fits[best["best_index"]].weights, dtype=float)
            ratios.append(float(weights.max() / max(weights.min(), 1e-12)))
    equal = [ratio <= EQUAL_WEIGHTS for ratio in ratios]
    verdict: Verdict = share_verdict(equal) if ratios else "not run here"
    return Measurement(
        ours=f"largest / smallest weight of the {len(ratios)} best fits: {min(ratios):.2f} to {max(ratios):.2f}" if ratios else "-",
        verdict=verdict,
        note=f"{sum(equal)} of {len(equal)} best fits have weights within a factor {EQUAL_WEIGHTS}",
        value=float(max(ratios)) if ratios else None,
        spread=f"{len(ratios)} best fits (layer x similarity x kernel)",
    )


SETTINGS = (
    f"{FEATURES}, the middle and last default layers (thesis: 8 and 15 of Pythia-1B's 16), mlp.hook_post; the Perturbation "
    "page's default grid (3 kernels x 2 similarities x dim 2-4 x lambda_d 10-1000, sigma 0.01-0.3, 3 noise draws), the real "
    "target's best configuration per kernel applied to 5 seeds of each control"
)
VIEW = "pages/perturbation.py?model={model}&features=" + FEATURES
_RULE_BELOW = "the real target below the control's band (central 95% of seeds x draws) at every layer (some: partly)"
_RULE_WITHIN = "the real target inside the control's band at every layer (some: partly)"


OPTIMISER = (
    "re-optimisation is the lab's batched L-BFGS run to its tolerance; the thesis used scipy's CG then Powell "
    "(kept as the baseline in benchmarks/bench_energy.py), which this row has not been run with"
)


RBF_FRAGILE = (
    "this verdict is fragile: RBF joint fits have several equally good minima (objectives equal to 1e-6) and "
    "re-optimisation from each ends at another distance, so activations that differ by 1e-7 (another BLAS thread "
    "count) move real and control distances by up to 2x and can flip it (measured with one torch thread, as the guard)"
)


def _declare(
    key: str, claim: str, where: str, paper_value: str, tolerance: str, measure: Measure, expected: dict, departure: str = OPTIMISER
) -> None:
    declare(
        Finding(
            key=key,
            paper="thesis",
            claim=claim,
            where=where,
            paper_value=paper_value,
            settings=SETTINGS,
            tolerance=tolerance,
            measure=measure,
            models=DEFAULT_LEDGER_MODELS,
            expected=expected,
            view=VIEW,
            minutes=1.5,
            departure=departure,
        )
    )


_declare(
    "thesis.energy_real_beats_permuted_cosine",
    "With cosine similarity, real features end much closer to their target after re-optimisation than permuted ones: real "
    "geometries are energy minima, random ones are not",
    "§4.3, Figure 10; conclusion 3",
    "distance much higher for permuted features",
    _RULE_BELOW,
    against_band("cosine", "permuted", inside=False),
    {"minilm": "reproduces", "smollm2": "reproduces"},
)
_declare(
    "thesis.energy_rbf_no_separation",
    "With RBF similarity, real and permuted features end about the same distance from their targets (RBF cannot tell them apart)",
    "§4.3, Figure 10; conclusion 4",
    "about the same distance",
    _RULE_WITHIN,
    against_band("rbf", "permuted", inside=True),
    {"minilm": "contradicted", "smollm2": "reproduces"},
    OPTIMISER + "; " + RBF_FRAGILE,
)
_declare(
    "thesis.energy_beyond_probing",
    "Real features sit nearer energy minima than probes trained on shuffled labels (the lab's control for the construction)",
    "conclusion 3 (control not in the thesis)",
    "not run in the thesis",
    "reproduces when the real target is below the shuffled-label band at every layer (some: partly, none: contradicted)",
    against_band("cosine", "shuffled_labels", inside=False),
    {"minilm": "contradicted", "smollm2": "contradicted"},
)
_declare(
    "thesis.energy_minima_narrow",
    "Energy minima are narrow: the match after re-optimisation is much worse at perturbation scale 0.1 than at 0.01",
    "§4.2, Figures 7 and 8",
    "error per pair rises significantly from sigma 0.01 to 0.1",
    f"the real target's mean distance at sigma 0.1 at least {NARROW_RATIO}x that at 0.01 for every layer and similarity",
    narrow_minima(),
    {"minilm": "contradicted", "smollm2": "contradicted"},
    OPTIMISER + ": from every sigma up to 0.3 it returns to the same minimum (the cosine distance is the same to 4 decimals), "
    "so here the minima are wide, or the thesis's optimiser stopped short of them",
)
_declare(
    "thesis.importance_weights_ignored",
    "The learned feature importance weights are largely ignored: they come out about equal",
    "§4.2; conclusion (importance weights)",
    "about equal in almost all cases",
    f"largest / smallest weight ≤ {EQUAL_WEIGHTS} in every best fit (some: partly)",
    weights_ignored,
    {"minilm": "partly", "smollm2": "partly"},
    "the weights are a bounded softmax (ratio at most 10); the best fits that use them sit at that bound",
)

THESIS_RULE = (
    "the thesis's selection rule (§4.2, §4.3): per layer and similarity, the one configuration (energy function, dim, "
    "lambda_d, lambda_x) with the lowest distance after re-optimisation at sigma 0.01, for the real target and every "
    "control alike; the rows above use the lab's rule (per kernel, the configuration whose joint fit is closest to the "
    "target, chosen before any perturbation), the Perturbation page's default"
)
for base, extra, where, paper_value, tolerance, measure, expected in (
    (
        "thesis.energy_real_beats_permuted_cosine",
        "; the energy function it picks per layer is the best kernel there",
        "§4.3, Figure 10; conclusion 3",
        "distance much higher for permuted features",
        _RULE_BELOW,
        against_band("cosine", "permuted", inside=False, rule="reoptimised"),
        "reproduces",
    ),
    (
        "thesis.energy_rbf_no_separation",
        "",
        "§4.3, Figure 10; conclusion 4",
        "about the same distance",
        _RULE_WITHIN,
        against_band("rbf", "permuted", inside=True, rule="reoptimised"),
        "partly",
    ),
    (
        "thesis.energy_minima_narrow",
        "",
        "§4.2, Figures 7 and 8",
        "error per pair rises significantly from sigma 0.01 to 0.1",
        f"the real target's mean distance at sigma 0.1 at least {NARROW_RATIO}x that at 0.01 for every layer and similarity",
        narrow_minima("reoptimised"),
        "partly",
    ),
):
    _declare(
        base + "_thesis_rule",
        f"As {base}, with the configuration chosen by the thesis's own rule{extra}",
        where,
        paper_value,
        tolerance,
        measure,
        {"minilm": expected, "smollm2": expected},
        THESIS_RULE + "; " + OPTIMISER + ("; " + RBF_FRAGILE if "rbf" in base else ""),
    )
