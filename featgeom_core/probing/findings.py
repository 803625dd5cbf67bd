"""The thesis's findings on probe geometry (paper 000, section 4.1 and conclusions 1 and 2),
measured with the geometry analysis at the thesis's settings on the offline models, beside the
controls it did not run (probes on shuffled labels, a second estimator of directions)."""

from __future__ import annotations

import numpy as np

from featgeom_core.findings.declare import NO_MODEL, Finding, Measure, Measurement, Verdict, declare, not_run, share_verdict
from featgeom_core.findings.params import DEFAULT_LEDGER_MODELS
from featgeom_core.params import default_layers
from featgeom_core.probing.params import Estimator, GeometryParams
from featgeom_core.probing.result import GeometryResult
from featgeom_core.progress import Progress, sub_progress
from featgeom_core.store import Store

SIMPLEX_TOLERANCE = 0.1
"""A PSM is at the simplex when its mean off-diagonal cosine is within this of -1/(K-1)."""
ORTHOGONAL_TOLERANCE = 0.1
"""The permuted control is orthogonal when its mean off-diagonal cosine is within this of 0."""
CONSTRUCTION_TOLERANCE = 0.05
"""Real directions sit where the shuffled-label control's do when the two mean cosines are within this."""
STABLE = 0.1
"""A PSM is stable from one layer to the next when its off-diagonal entries move by at most this on average."""


def geometry(model_id: str, feature_set_name: str, store: Store, report: Progress, estimator: Estimator = "logistic") -> GeometryResult:
    """The geometry page's result for a named feature set at the model's default layers (mlp.hook_post)."""
    from featgeom_core.data import load_feature_set
    from featgeom_core.models import shared_model
    from featgeom_core.probing.pipeline import feature_geometry

    model = shared_model(model_id)
    feature_set = load_feature_set(feature_set_name, tokenizer=model.tokenizer)
    layers = default_layers(model.n_layers)
    return feature_geometry(model, feature_set, layers, GeometryParams(estimator=estimator), store=store, progress=report)


def span(values: np.ndarray) -> str:
    """Per-layer values as 'low to high' (one number when they agree to 3 decimals)."""
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:.3f}" if round(low, 3) == round(high, 3) else f"{low:.3f} to {high:.3f}"


def encoded_note(result: GeometryResult) -> str:
    """What to add when the probes do not beat chance at every layer."""
    weak = [layer for layer, q in zip(result.layers, result.quality) if not q.encoded]
    if not weak:
        return ""
    return f" The probes do not beat chance at layers {weak}: there the geometry is the probing construction's."


def simplex(feature_set_name: str) -> Measure:
    """The measure: the real directions' mean off-diagonal cosine per layer against -1/(K-1)."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result = geometry(model_id, feature_set_name, store, report)
        target = -1.0 / (len(result.feature_names) - 1)
        real = result.mean_off_diagonal("cosine", "real")
        at = np.abs(real - target) <= SIMPLEX_TOLERANCE
        pairs = result.psms[("cosine", "real")][:, ~np.eye(len(result.feature_names), dtype=bool)]
        return Measurement(
            ours=f"mean off-diagonal cosine {span(real)} at layers {list(result.layers)}, pairs {span(pairs)} (simplex {target:.3f})",
            verdict=share_verdict(at),
            note=f"{int(at.sum())} of {len(at)} layers within {SIMPLEX_TOLERANCE} of the simplex.{encoded_note(result)}",
            value=float(real.mean()),
            spread=f"{len(real)} layers",
        )

    return measure


def simplex_against_permuted(feature_set_name: str) -> Measure:
    """The measure: real directions at the simplex while the permuted control's are orthogonal, layer by layer."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result = geometry(model_id, feature_set_name, store, report)
        target = -1.0 / (len(result.feature_names) - 1)
        real = result.mean_off_diagonal("cosine", "real")
        permuted = result.mean_off_diagonal("cosine", "permuted")
        apart = (np.abs(real - target) <= SIMPLEX_TOLERANCE) & (np.abs(permuted) <= ORTHOGONAL_TOLERANCE)
        return Measurement(
            ours=f"real {span(real)}, permuted {span(permuted)} (mean off-diagonal cosine, layers {list(result.layers)})",
            verdict=share_verdict(apart),
            note=f"{int(apart.sum())} of {len(apart)} layers: real at the simplex and permuted orthogonal",
            value=float(np.abs(permuted).max()),
            spread=f"{len(real)} layers",
        )

    return measure


def simplex_against_shuffled(feature_set_name: str, estimator: Estimator = "logistic") -> Measure:
    """The measure: the real directions' mean cosine against the shuffled-label control's, layer by layer."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result = geometry(model_id, feature_set_name, store, report, estimator)
        real = result.mean_off_diagonal("cosine", "real")
        shuffled = result.mean_off_diagonal("cosine", "shuffled_labels")
        gap = np.abs(real - shuffled)
        same = gap <= CONSTRUCTION_TOLERANCE
        verdict = share_verdict(~same)  # the claim holds where the control differs
        return Measurement(
            ours=f"real {span(real)}, shuffled labels {span(shuffled)} (mean off-diagonal cosine, layers {list(result.layers)})",
            verdict=verdict,
            note=(
                f"at {int(same.sum())} of {len(same)} layers the shuffled-label control sits within {CONSTRUCTION_TOLERANCE} of the "
                f"real directions.{encoded_note(result)}"
            ),
            value=float(gap.max()),
            spread=f"largest |real - shuffled| {gap.max():.3f} over {len(gap)} layers",
        )

    return measure


def simplex_against_randomised(feature_set_name: str) -> Measure:
    """The measure: the trained model's mean off-diagonal cosine against that of the same architecture
    with randomised weights (``<model>-random``), layer by layer, with each one's probe quality."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        from featgeom_core.models.ids import RANDOMISED_SUFFIX

        trained = geometry(model_id, feature_set_name, store, sub_progress(report, 0.0, 0.5))
        untrained = geometry(model_id + RANDOMISED_SUFFIX, feature_set_name, store, sub_progress(report, 0.5, 1.0))
        real, control = trained.mean_off_diagonal("cosine", "real"), untrained.mean_off_diagonal("cosine", "real")
        gap = np.abs(real - control)
        same = gap <= CONSTRUCTION_TOLERANCE
        verdict = share_verdict(~same)  # the claim holds where the control differs

        def accuracy(result: GeometryResult) -> str:
            return span(np.array([q.balanced_accuracy for q in result.quality]))

        return Measurement(
            ours=(
                f"trained {span(real)}, randomised weights {span(control)} (mean off-diagonal cosine, layers {list(trained.layers)}); "
                f"balanced accuracy trained {accuracy(trained)}, randomised {accuracy(untrained)} "
                f"(chance {1 / len(trained.feature_names):.2f})"
            ),
            verdict=verdict,
            note=f"at {int(same.sum())} of {len(same)} layers the randomised model's directions sit within {CONSTRUCTION_TOLERANCE} of the "
            "trained model's",
            value=float(gap.max()),
            spread=f"largest |trained - randomised| {gap.max():.3f} over {len(gap)} layers; one seed of random weights",
        )

    return measure


def class_means_simplex(feature_set_name: str) -> Measure:
    """The measure: do directions from class means in whitened activations (no one-vs-rest) sit at the simplex?"""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result = geometry(model_id, feature_set_name, store, report, "class_mean")
        target = -1.0 / (len(result.feature_names) - 1)
        real = result.mean_off_diagonal("cosine", "real")
        shuffled = result.mean_off_diagonal("cosine", "shuffled_labels")
        at = np.abs(real - target) <= SIMPLEX_TOLERANCE
        return Measurement(
            ours=(
                f"class-mean directions: mean off-diagonal cosine {span(real)} (simplex {target:.3f}); shuffled labels "
                f"{span(shuffled)}; balanced accuracy {span(np.array([q.balanced_accuracy for q in result.quality]))}"
            ),
            verdict=share_verdict(at),
            note=f"{int(at.sum())} of {len(at)} layers within {SIMPLEX_TOLERANCE} of the simplex.{encoded_note(result)}",
            value=float(real.mean()),
            spread=f"{len(real)} layers",
        )

    return measure


def layer_changes(result: GeometryResult, kind: str) -> np.ndarray:
    """Mean |change| of the real PSM's off-diagonal entries from each default layer to the next (L - 1,)."""
    matrices = result.psms[(kind, "real")]
    off = ~np.eye(matrices.shape[-1], dtype=bool)
    return np.abs(np.diff(matrices[:, off], axis=0)).mean(axis=1)


def cosine_stable_rbf_not(feature_set_name: str) -> Measure:
    """The measure: the cosine PSM barely moves from layer to layer past the first, the RBF PSM moves more."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        result = geometry(model_id, feature_set_name, store, report)
        cosine, rbf = layer_changes(result, "cosine"), layer_changes(result, "rbf")
        stable = bool((cosine[1:] <= STABLE).all()) if len(cosine) > 1 else bool((cosine <= STABLE).all())
        moves = bool(rbf.mean() > cosine.mean())
        verdict: Verdict = "reproduces" if stable and moves else ("partly" if stable or moves else "contradicted")
        return Measurement(
            ours=(
                f"mean |change| per layer step: cosine {' '.join(f'{v:.3f}' for v in cosine)}, rbf {' '.join(f'{v:.3f}' for v in rbf)} "
                f"(layers {list(result.layers)})"
            ),
            verdict=verdict,
            note=(
                f"cosine {'stable' if stable else 'not stable'} after the first step (≤ {STABLE}); rbf moves "
                f"{'more' if moves else 'less'} than cosine on average"
            ),
            value=float(cosine[1:].max() if len(cosine) > 1 else cosine.max()),
            spread=f"{len(cosine)} layer steps",
        )

    return measure


SETTINGS = (
    "one-vs-rest L2 logistic probes (C = 1, balanced, 70/30 split by text) on mlp.hook_post at the default layers "
    "(every layer of MiniLM, 8 spread over SmolLM2's 30); the thesis: Pythia-1B-deduped, all 16 layers"
)
GEOMETRY_VIEW = "pages/geometry.py?model={model}&features={features}&hook=mlp_post"
SIMPLEX_RULE = f"mean off-diagonal cosine within {SIMPLEX_TOLERANCE} of -1/(K-1) at every layer (some: partly)"
SHUFFLED_RULE = (
    f"contradicted when the shuffled-label control's mean cosine is within {CONSTRUCTION_TOLERANCE} of the real one at every layer, "
    "partly at some, reproduces at none"
)
_BOTH = {"minilm": "reproduces", "smollm2": "reproduces"}


THESIS_DUPLICATES = (
    ("contains_capital", "leading_capital"),
    ("contains_whitespace", "contains_all_whitespace"),
    ("all_digits", "contains_digit"),
)
"""The text-feature pairs the thesis de-duplicates (§3.7): it keeps the first of each and drops the second."""


def thesis_duplicates(feature_set_name: str) -> Measure:
    """The measure: at each layer, the pairs the lab's de-duplication (cosine PSM of the real
    directions, its default threshold) drops, against the thesis's three pairs among the probed features."""

    def measure(model_id: str, store: Store, report: Progress) -> Measurement:
        from featgeom_core.probing.params import DedupParams
        from featgeom_core.probing.similarity import dedup

        result = geometry(model_id, feature_set_name, store, report)
        names = list(result.feature_names)
        threshold = DedupParams().threshold
        psms = result.psms[("cosine", "real")]
        probed = [pair for pair in THESIS_DUPLICATES if set(pair) <= set(names)]
        expected = {frozenset(pair) for pair in probed}
        holds, extra = [], set()
        for psm in psms:
            found = {frozenset((names[i], names[k])) for i, k, _ in dedup(psm, threshold).dropped}
            holds.append(found == expected)
            extra |= found - expected
        cells = [f"{a} / {b}: cosine {span(psms[:, names.index(a), names.index(b)])}" for a, b in probed]
        missing = [f"{a} / {b}" for a, b in THESIS_DUPLICATES if (a, b) not in probed]
        unprobed = f"; not probed here: {', '.join(missing)} (too few positives: {', '.join(sorted(result.notes))})" if missing else ""
        others = ", ".join(" / ".join(sorted(pair)) for pair in sorted(extra, key=sorted))
        return Measurement(
            ours="; ".join(cells) + (f"; also above {threshold} at some layer: {others}" if extra else "") + unprobed,
            verdict=share_verdict(holds) if probed else "not run here",
            note=f"the lab's de-duplication (cosine > {threshold}) drops exactly the thesis's probed pairs at {sum(holds)} of "
            f"{len(holds)} layers",
            value=float(np.min([psms[:, names.index(a), names.index(b)].min() for a, b in probed])) if probed else None,
            spread=f"{len(holds)} layers",
        )

    return measure


def _declare(
    key: str,
    claim: str,
    where: str,
    paper_value: str,
    features: str,
    settings: str,
    tolerance: str,
    measure: Measure,
    expected: dict,
    departure: str = "",
) -> None:
    declare(
        Finding(
            key=key,
            paper="thesis",
            claim=claim,
            where=where,
            paper_value=paper_value,
            settings=f"{features}; {settings}",
            tolerance=tolerance,
            measure=measure,
            models=DEFAULT_LEDGER_MODELS,
            expected=expected,
            view=GEOMETRY_VIEW.replace("{features}", features) + ("&estimator=class_mean" if "class means" in settings else ""),
            departure=departure,
        )
    )


_declare(
    "thesis.simplex",
    "Knowledge features about famous people (athletes' sports) sit in a simplex: every pair has about the same negative cosine",
    "§4.1, Figure 3; conclusion 1",
    "a simplex at every layer (3 classes: cosine -0.5)",
    "athlete_sport",
    SETTINGS,
    SIMPLEX_RULE,
    simplex("athlete_sport"),
    _BOTH,
)
_declare(
    "thesis.simplex_not_random",
    "The simplex is non-trivial: permuted directions (random with the same per-dimension values) are orthogonal",
    "§4.1, Figures 3 and 4; conclusion 1",
    "real: a simplex; permuted: about orthogonal",
    "athlete_sport",
    SETTINGS + "; against the permuted control",
    f"at every layer the real cosine within {SIMPLEX_TOLERANCE} of the simplex and the permuted within {ORTHOGONAL_TOLERANCE} of 0",
    simplex_against_permuted("athlete_sport"),
    _BOTH,
)
_declare(
    "thesis.simplex_beyond_probing",
    "The simplex says something about the model (the lab's control: probes trained on shuffled labels)",
    "conclusion 1 (control not in the thesis)",
    "not run in the thesis",
    "athlete_sport",
    SETTINGS + "; against probes retrained on shuffled labels",
    SHUFFLED_RULE,
    simplex_against_shuffled("athlete_sport"),
    {"minilm": "contradicted", "smollm2": "contradicted"},
)
_declare(
    "thesis.simplex_beyond_probing_encoded",
    "The same on a feature set the models encode (world_country, 5 classes, balanced accuracy 0.8+)",
    "conclusion 1 (the lab's extension)",
    "not run in the thesis",
    "world_country",
    SETTINGS + "; against probes retrained on shuffled labels",
    SHUFFLED_RULE,
    simplex_against_shuffled("world_country"),
    {"minilm": "contradicted", "smollm2": "contradicted"},
)
RANDOMISED_RULE = (
    f"contradicted when the randomised model's mean cosine is within {CONSTRUCTION_TOLERANCE} of the trained model's at every "
    "layer, partly at some, reproduces at none"
)
RANDOMISED_SETTINGS = (
    SETTINGS + "; against the same probes on the same architecture with every weight drawn afresh by its initialiser "
    "(model id <model>-random, seed 0)"
)
_declare(
    "thesis.simplex_randomised_weights",
    "The simplex comes from what the model learned: the same architecture with randomised weights does not give it "
    "(the thesis's proposed control)",
    "§5.1, future work (proposed, not run in the thesis)",
    "not run in the thesis",
    "athlete_sport",
    RANDOMISED_SETTINGS,
    RANDOMISED_RULE,
    simplex_against_randomised("athlete_sport"),
    {"minilm": "contradicted", "smollm2": "contradicted"},
)
_declare(
    "thesis.simplex_randomised_weights_encoded",
    "The same on a feature set the models encode (world_country, 5 classes)",
    "§5.1, future work (the lab's extension)",
    "not run in the thesis",
    "world_country",
    RANDOMISED_SETTINGS,
    RANDOMISED_RULE,
    simplex_against_randomised("world_country"),
    {"minilm": "contradicted", "smollm2": "contradicted"},
)
_declare(
    "thesis.simplex_class_means",
    "A simplex also with directions not estimated one-vs-rest: class means in whitened activations (Park et al. 2024)",
    "conclusion 1 (the lab's second estimator)",
    "not run in the thesis",
    "world_country",
    "class means in whitened activations (whitened with generic text; Ledoit-Wolf class covariances) on mlp.hook_post at the "
    "default layers",
    SIMPLEX_RULE,
    class_means_simplex("world_country"),
    {"minilm": "contradicted", "smollm2": "contradicted"},
    "not the thesis's estimator: every class vector is read against generic text, so all five share the offset of "
    "country prompts from it (positive cosines); the shuffled-label control, all five classes the set's mean, sits higher still",
)
_declare(
    "thesis.cosine_stable_rbf_changes",
    "Geometry is set early and kept through the layers for cosine similarity; the RBF kernel, which sees norms, changes",
    "§4.1, Figure 1; conclusion 2",
    "cosine PSMs about the same at every layer, small deviations early and late; RBF PSMs differ",
    "text_features",
    SETTINGS,
    f"cosine: mean |change| of off-diagonal entries ≤ {STABLE} at every layer step after the first; rbf: larger mean change than cosine",
    cosine_stable_rbf_not("text_features"),
    {"minilm": "partly", "smollm2": "reproduces"},
    "the RBF width is the thesis's C = 200 for every model; MiniLM's MLP activations are not Pythia-1B's, so the RBF contrast differs",
)
_declare(
    "thesis.text_features_duplicates",
    "Some text features are represented almost identically and must be de-duplicated before the energy fits: "
    "leading_capital (of contains_capital), contains_all_whitespace (of contains_whitespace), contains_digit (of all_digits)",
    "§3.7",
    "those three pairs above the de-duplication threshold, and no other",
    "text_features",
    SETTINGS,
    "at every layer the lab's de-duplication (cosine PSM of the real directions, threshold 0.9, the Geometry page's default) "
    "drops exactly the thesis's pairs among the probed features (some layers: partly)",
    thesis_duplicates("text_features"),
    {"minilm": "partly", "smollm2": "contradicted"},
    "the thesis does not give its threshold; 0.9 is the lab's default. A token's string includes the space before it "
    "(as Gurnee et al.'s), so contains_whitespace is mostly has_leading_space; MiniLM is uncased (no capital features)",
)
declare(
    Finding(
        key="thesis.pythia_1b",
        paper="thesis",
        claim="The findings above on the thesis's own model, Pythia-1B-deduped (post-MLP activations, 16 layers, 8,192 wide)",
        where="§4",
        paper_value="as above",
        settings="-",
        tolerance="-",
        measure=not_run("Pythia-1B is a hub model (2 GB) that no machine here can download; the lab runs it by hub id where a network is"),
        models=(NO_MODEL,),
        expected={NO_MODEL: "not run here"},
        minutes=0.0,
    )
)
