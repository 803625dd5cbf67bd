"""The thesis's energy findings (paper 000, sections 4.2 and 4.3, conclusions 3 and 4): real
features end closer to the target after re-optimisation than permuted ones with cosine similarity,
not with RBF; minima are narrow; the learned importance weights are about equal. Measured with the
Perturbation page's sweep (its default grid, both controls, 5 seeds each) on the offline models."""

from __future__ import annotations

from typing import Any

import numpy as np

from featgeom_core.energy.params import EnergySweepParams
from featgeom_core.energy.result import EnergySweepResult
from featgeom_core.energy.sweep import SelectionRule
from featgeom_core.findings.declare import Expected, Finding, Measure, Measurement, Verdict, computed, declare, share_verdict
from featgeom_core.findings.params import DEFAULT_LEDGER_MODELS
from featgeom_core.params import default_layers
from featgeom_core.progress import Progress, sub_progress
from featgeom_core.store import Store

FEATURES = "athlete_sport"
"""The thesis's knowledge set (Figures 7, 8 and 10)."""
TEXT_FEATURES = "text_features"
"""The thesis's token-level set (Figures 5, 6 and 9), de-duplicated first (§3.7)."""
DEDUP = {FEATURES: None, TEXT_FEATURES: 0.9}
"""The de-duplication threshold on the real cosine PSM per feature set (None: none); §3.7 drops
text_features' three near-duplicates (leading_capital, contains_all_whitespace, contains_digit)."""
NARROW_RATIO = 1.5
"""Minima are narrow when the mean re-optimisation distance at sigma = 0.1 is at least this times that at 0.01."""
REAL_DRAWS = EnergySweepParams.model_fields["real_draws"].default
"""The real target's noise draws per sigma in the sweep (the controls have 3 per seed)."""
EQUAL_WEIGHTS = 1.5
"""Learned importance weights are 'about equal' when the largest is at most this times the smallest."""


def sweep_layers(n_layers: int) -> list[int]:
    """Two layers as the thesis's 8 and 15 of 16: the middle and the last of the default layers."""
    layers = default_layers(n_layers)
    return sorted({layers[len(layers) // 2], layers[-1]})


def sweep(
    model_id: str, store: Store, report: Progress, rule: SelectionRule = "joint_fit", features: str = FEATURES
) -> tuple[EnergySweepResult, list[dict[str, Any]]]:
    """The Perturbation page's sweep for ``features`` (de-duplicated as :data:`DEDUP` says) at
    :func:`sweep_layers` (stored like the page's), and its summary on the configurations ``rule`` picks."""
    from featgeom_core.data import load_feature_set
    from featgeom_core.energy.controls import control_summary
    from featgeom_core.energy.jobs import ENERGY_SWEEP
    from featgeom_core.energy.params import SweepGrid
    from featgeom_core.models import shared_model
    from featgeom_core.probing import ControlParams, GeometryParams
    from featgeom_core.probing.controls import controls_by_layer

    model = shared_model(model_id)
    feature_set = load_feature_set(features, tokenizer=model.tokenizer)
    layers = sweep_layers(model.n_layers)
    geometry, by_layer, _ = controls_by_layer(
        model,
        feature_set,
        layers,
        GeometryParams(),
        ControlParams(),
        dedup_threshold=DEDUP[features],
        store=store,
        progress=sub_progress(report, 0.0, 0.4),
    )
    similarities = list(SweepGrid().similarities)
    params = ENERGY_SWEEP.parse(
        {
            "targets": [spec for layer in by_layer for spec in layer.sweep_targets(similarities)],
            "similarities": similarities,
            "label": f"{model_id} · {features} · layers {','.join(map(str, layers))} · mlp_post",
            "probe_warning": geometry.warning() or "",
        }
    )
    result = computed(ENERGY_SWEEP, params, store, sub_progress(report, 0.4, 1.0))
    return result, control_summary(result.rows, rule=rule)


def _cells(summary: list[dict[str, Any]], similarity: str, control: str, chosen: dict[int, str] | None = None) -> str:
    return "; ".join(
        f"layer {row['layer']}{' (' + chosen[row['layer']] + ')' if chosen else ''}: real {row['real']:.4f} "
        f"[{row['real_low']:.4f}, {row['real_high']:.4f}], "
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


def against_band(similarity: str, control: str, inside: bool, rule: SelectionRule = "joint_fit", features: str = FEATURES) -> Measure:
    """The measure: at each layer, is the real target's distance after re-optimisation below the
    control's whole band (``inside`` False), or inside it, i.e. not separated (``inside`` True), on
    the curves of the configurations ``rule`` picks, for ``features``?"""
    where = "inside" if inside else "below"

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result, summary = sweep(model_id, store, report, rule, features)
        chosen = chosen_configurations(result, similarity, rule) if rule == "reoptimised" else None
        rows = [row for row in summary if row["similarity"] == similarity and control in row]
        low, high = control + "_low", control + "_high"
        holds = [(row[low] <= row["real"] <= row[high]) if inside else row["real"] < row[low] for row in rows]
        return Measurement(
            ours=_cells(summary, similarity, control, chosen),
            verdict=share_verdict(holds),
            note=f"real {where} the {control} band at {sum(holds)} of {len(holds)} layers",
            value=float(np.mean([row["real_minus_" + control] for row in rows])),
            spread=f"bands: central 95% of a control's 5 seeds x 3 noise draws, of the real target's {REAL_DRAWS} draws "
            f"started in turn from its equally good minima; {len(rows)} layers",
        )

    return measure


def narrow_minima(rule: SelectionRule = "joint_fit", features: str = FEATURES) -> Measure:
    """The measure: the real targets' mean re-optimisation distance at sigma = 0.1 against 0.01, per
    layer and similarity, on the configurations ``rule`` picks, for ``features``."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        from featgeom_core.energy.sweep import curves_of_best

        result, _ = sweep(model_id, store, report, features=features)
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


def lowest_real_distances(result: EnergySweepResult, sigma: float = 0.01) -> dict[tuple[int, str, str], float]:
    """(layer, similarity, kernel) -> the real target's lowest mean re-optimisation distance at
    ``sigma`` over the other settings (dim, lambda_d, lambda_x): the panels of the thesis's Figures 5
    to 8, each the thesis's error per feature pair."""
    lowest: dict[tuple[int, str, str], float] = {}
    for row in result.rows:
        if row["target"] == "real" and np.isclose(row["sigma"], sigma):
            key = (row["layer"], row["similarity"], row["kernel"])
            lowest[key] = min(lowest.get(key, np.inf), row["distance"])
    return lowest


def knowledge_nearer_minimum(model_id: str, store: Store, report: Progress) -> Measurement:
    """The measure: per layer, similarity and energy function, the knowledge set's lowest error per
    feature pair at sigma = 0.01 against the (de-duplicated) text features' (Figure 7 against 5)."""
    knowledge = lowest_real_distances(sweep(model_id, store, sub_progress(report, 0.0, 0.5))[0])
    text = lowest_real_distances(sweep(model_id, store, sub_progress(report, 0.5, 1.0), features=TEXT_FEATURES)[0])
    cases = sorted(set(knowledge) & set(text))
    lower = [knowledge[case] < text[case] for case in cases]
    cells = [f"layer {case[0]} {case[1]} {case[2]}: {knowledge[case]:.4f} vs {text[case]:.4f}" for case in cases]
    return Measurement(
        ours=f"{FEATURES} vs {TEXT_FEATURES}: " + "; ".join(cells),
        verdict=share_verdict(lower),
        note=f"{FEATURES}'s error per pair below {TEXT_FEATURES}' in {sum(lower)} of {len(lower)} (layer, similarity, energy) panels",
        value=float(np.mean(lower)) if lower else None,
        spread=f"{len(lower)} panels, each the lowest over dim, lambda_d and lambda_x of the mean over 3 noise draws",
    )


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
    "the middle and last default layers (thesis: 8 and 15 of Pythia-1B's 16), mlp.hook_post; the Perturbation "
    "page's default grid (3 kernels x 2 similarities x dim 2-4 x lambda_d 10-1000, sigma 0.01-0.3, 3 noise draws), the real "
    "target's best configuration per kernel applied to 5 seeds of each control"
)


def _settings(features: str) -> str:
    """The settings of a row on ``features``: the set, its de-duplication, then :data:`SETTINGS`."""
    dedup = f" de-duplicated at cosine {DEDUP[features]:g} (§3.7)" if DEDUP[features] else ""
    return f"{features}{dedup}, " + SETTINGS


def _view(features: str) -> str:
    """The Perturbation page on ``features``, de-duplicated as the row is."""
    dedup = f"&dedup=1&threshold={DEDUP[features]:g}" if DEDUP[features] else ""
    return "pages/perturbation.py?model={model}&features=" + features + dedup


_RULE_BELOW = "the real target below the control's band (central 95% of seeds x draws) at every layer (some: partly)"
_RULE_WITHIN = "the real target inside the control's band at every layer (some: partly)"


OPTIMISER = (
    "re-optimisation is the lab's batched L-BFGS run to its tolerance; the thesis used scipy's CG then Powell "
    "(kept as the baseline in benchmarks/bench_energy.py), which this row has not been run with"
)


RBF_FRAGILE = (
    f"this verdict is fragile: the real target's distance is the mean of its {REAL_DRAWS} noise draws started in turn from its joint "
    "fit's equally good minima, and moves by 2% between CPUs (MiniLM layer 5: 0.0109 and 0.0107); the control's band is "
    "the central 95% of 15 units (5 seeds x 3 draws), so its edge is nearly its extreme unit and moves by up to 30% "
    "(0.0091 and 0.0118), since activations that differ by 1e-7 (another CPU's vector width) change which minimum each "
    "seed's fit lands in; the real target sits between those edges (measured with one torch thread, as the guard: "
    "on MiniLM's athlete_sport partly on one machine and contradicted on another, on SmolLM2's partly and reproduces)"
)


CONFIGURATION_FRAGILE = (
    "on SmolLM2 the configuration the rule picks moves too: at layer 17 the real target's distance is 0.0258 on one CPU and "
    f"0.0385 on another, each narrow over its {REAL_DRAWS} draws, as another (dim, lambda_d) fits the target best by a hair, so the "
    "row has landed on all three verdicts"
)


MARGIN_FRAGILE = (
    "this verdict is fragile on {models}: the real target sits within a few percent of the control band's edge, and the "
    "joint fits and re-optimisations move by that much between CPUs (float rounding of another vector width), so it "
    "reads one way on one machine and the other way on another"
)


def _declare(
    key: str,
    claim: str,
    where: str,
    paper_value: str,
    tolerance: str,
    measure: Measure,
    expected: dict[str, Expected],
    departure: str = OPTIMISER,
    features: str = FEATURES,
) -> None:
    declare(
        Finding(
            key=key,
            paper="thesis",
            claim=claim,
            where=where,
            paper_value=paper_value,
            settings=_settings(features),
            tolerance=tolerance,
            measure=measure,
            models=DEFAULT_LEDGER_MODELS,
            expected=expected,
            view=_view(features),
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
    {"minilm": ("partly", "contradicted"), "smollm2": ("reproduces", "partly")},
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


def _thesis_rule_twin(
    base: str,
    extra: str,
    where: str,
    paper_value: str,
    tolerance: str,
    measure: Measure,
    expected: Expected,
    features: str = FEATURES,
    on_minilm: Expected | None = None,
    fragile: str = "",
) -> None:
    """Declare ``base``'s twin measured on the configuration the thesis's own rule picks (``on_minilm``:
    MiniLM's declaration where it differs, with ``fragile`` saying why)."""
    _declare(
        base + "_thesis_rule",
        f"As {base}, with the configuration chosen by the thesis's own rule{extra}",
        where,
        paper_value,
        tolerance,
        measure,
        {"minilm": expected if on_minilm is None else on_minilm, "smollm2": expected},
        THESIS_RULE + "; " + OPTIMISER + ("; " + fragile if fragile else ""),
        features=features,
    )


_TWINS: tuple[tuple[str, str, str, str, str, Measure, Expected], ...] = (
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
        "reproduces",
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
)
for base, extra, where, paper_value, tolerance, measure, expected in _TWINS:
    _thesis_rule_twin(base, extra, where, paper_value, tolerance, measure, expected)

# The same claims on the thesis's token-level set (Figures 5, 6 and 9), de-duplicated first (§3.7).
_NARROW = f"the real target's mean distance at sigma 0.1 at least {NARROW_RATIO}x that at 0.01 for every layer and similarity"
_BOTH = ("minilm", "smollm2")
_TEXT_ROWS: tuple[tuple[str, str, str, str, Measure, tuple[Expected, Expected], str], ...] = (
    (
        "thesis.energy_real_beats_permuted_cosine",
        "§4.3, Figure 9",
        "distance clearly higher for permuted features",
        _RULE_BELOW,
        against_band("cosine", "permuted", inside=False, features=TEXT_FEATURES),
        (("partly", "reproduces"), "reproduces"),
        OPTIMISER + "; " + MARGIN_FRAGILE.format(models="MiniLM"),
    ),
    (
        "thesis.energy_rbf_no_separation",
        "§4.3, Figure 9",
        "roughly the same behaviour",
        _RULE_WITHIN,
        against_band("rbf", "permuted", inside=True, features=TEXT_FEATURES),
        ("reproduces", ("reproduces", "partly", "contradicted")),
        OPTIMISER + "; " + RBF_FRAGILE + "; " + CONFIGURATION_FRAGILE,
    ),
    (
        "thesis.energy_beyond_probing",
        "conclusion 3 (control not in the thesis)",
        "not run in the thesis",
        "reproduces when the real target is below the shuffled-label band at every layer (some: partly, none: contradicted)",
        against_band("cosine", "shuffled_labels", inside=False, features=TEXT_FEATURES),
        (("partly", "reproduces"), ("reproduces", "partly")),
        OPTIMISER + "; " + MARGIN_FRAGILE.format(models="both models"),
    ),
    (
        "thesis.energy_minima_narrow",
        "§4.2, Figures 5 and 6",
        "the match significantly worse at sigma 0.1 than at 0.01",
        _NARROW,
        narrow_minima(features=TEXT_FEATURES),
        ("contradicted", "contradicted"),
        OPTIMISER + ": from every sigma up to 0.3 it returns to the same minimum",
    ),
)
for base, where, paper_value, tolerance, measure, verdicts, departure in _TEXT_ROWS:
    _declare(
        base + "_text",
        f"As {base}, on the token-level text features",
        where,
        f"{paper_value} (the de-duplicated {TEXT_FEATURES})",
        tolerance,
        measure,
        dict(zip(_BOTH, verdicts)),
        departure,
        features=TEXT_FEATURES,
    )
_thesis_rule_twin(
    "thesis.energy_real_beats_permuted_cosine_text",
    "",
    "§4.2, §4.3, Figures 5, 6 and 9",
    "as thesis.energy_real_beats_permuted_cosine_text",
    _RULE_BELOW,
    against_band("cosine", "permuted", inside=False, rule="reoptimised", features=TEXT_FEATURES),
    "reproduces",
    TEXT_FEATURES,
)
_thesis_rule_twin(
    "thesis.energy_minima_narrow_text",
    "",
    "§4.2, §4.3, Figures 5, 6 and 9",
    "as thesis.energy_minima_narrow_text",
    _NARROW,
    narrow_minima("reoptimised", features=TEXT_FEATURES),
    "contradicted",
    TEXT_FEATURES,
    on_minilm=("contradicted", "partly"),
    fragile="this verdict is fragile on MiniLM: the RBF configuration the thesis's rule picks at layer 3 rises x1.3 on one "
    "machine and x1.7 on another (float rounding of another vector width), across the x1.5 line",
)
_declare(
    "thesis.energy_knowledge_nearer_minimum",
    f"The knowledge features ({FEATURES}) sit closer to an energy minimum than the text features: their error per feature pair "
    "after re-optimisation is lower",
    "§4.2, Figure 7 against Figure 5",
    "error per pair lower for athlete occupation in general",
    "reproduces when the knowledge set's lowest error per pair at sigma 0.01 is below the text features' in every "
    "(layer, similarity, energy function) panel (some: partly, none: contradicted)",
    knowledge_nearer_minimum,
    {"minilm": "partly", "smollm2": "partly"},
    OPTIMISER + "; the sets differ in size (3 against 7 on MiniLM, 11 on SmolLM2: de-duplication drops none at these layers), "
    "which the error per pair (/ N^2) does not remove; with cosine similarity the exp and Riesz re-optimisations "
    "leave the 3-feature simplex for the minimum of the weighted energy, whose weights sit at their bound",
    features=TEXT_FEATURES,
)
