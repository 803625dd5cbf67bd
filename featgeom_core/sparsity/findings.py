"""The sparsity paper's findings on synthetic data (paper 002, section 3.1, Figure 1): the metrics
against the true sparsity a/2, N0's overestimate, and the controls' separation, measured with the
validation page's job at the paper's setting over seeds of data."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from featgeom_core.findings.declare import NO_MODEL, Finding, Measure, Measurement, Verdict, computed, declare, share_verdict, within
from featgeom_core.progress import Progress, steps_progress
from featgeom_core.sparsity.params import SyntheticGridParams
from featgeom_core.store import Store

SEEDS = (0, 1)
"""Seeds of the synthetic data (each a ``sparsity.synthetic`` job at the paper's setting)."""
TRACKS = 0.25
"""A metric tracks a/2 at an a when its mean over seeds is within this fraction of a/2."""
VIEW = "pages/sparsity_validation.py"


def grids(store: Store, report: Progress) -> list[list[dict[str, Any]]]:
    """The validation grid's rows (one per data set) for each seed, from the store when the page or
    an earlier ledger computed them."""
    from featgeom_core.sparsity.jobs import SPARSITY_SYNTHETIC

    return [
        computed(SPARSITY_SYNTHETIC, SyntheticGridParams(seed=seed), store, steps_progress(report, k, len(SEEDS))).rows
        for k, seed in enumerate(SEEDS)
    ]


def by_dataset(runs: list[list[dict[str, Any]]], metric: str) -> dict[tuple[str, float], np.ndarray]:
    """(dataset, a) -> the metric on each seed (a is 0 for controls)."""
    values: dict[tuple[str, float], list[float]] = defaultdict(list)
    for rows in runs:
        for row in rows:
            values[(row["dataset"], float(row.get("a") or 0.0))].append(float(row[metric]))
    return {key: np.asarray(v) for key, v in values.items()}


def _value(values: np.ndarray) -> str:
    return f"{values.mean():.2f}" + (f" ({values.min():.2f}-{values.max():.2f})" if len(values) > 1 else "")


def tracks_half_a(metric: str, label: str) -> Measure:
    """The measure: ``metric`` (mean over seeds) against a/2 at every a of the grid."""

    def measure(model: str, store: Store, report: Progress) -> Measurement:
        values = {key: v for key, v in by_dataset(grids(store, report), metric).items() if key[0] == "sparse_linear"}
        close = [within(float(v.mean()), a / 2, TRACKS) for (_, a), v in sorted(values.items())]
        where = ", ".join(f"{a:g}" for ((_, a), _), ok in zip(sorted(values.items()), close) if ok) or "none"
        return Measurement(
            ours=f"{label} against a/2: "
            + ", ".join(f"a = {a:g}: {_value(v)} ({v.mean() / (a / 2) - 1:+.0%})" for (_, a), v in sorted(values.items())),
            verdict=share_verdict(close),
            note=f"within {TRACKS:.0%} of a/2 at a = {where}",
            value=float(sum(close)),
            spread=f"mean (range) over {len(SEEDS)} seeds of data",
        )

    return measure


def n0_overestimates(model: str, store: Store, report: Progress) -> Measurement:
    """The measure: N0 (non-zero coefficients per activation, mean over seeds) against a/2 at every a."""
    values = sorted((key, v) for key, v in by_dataset(grids(store, report), "n0").items() if key[0] == "sparse_linear")
    over = [bool(v.min() > a / 2) for (_, a), v in values]
    return Measurement(
        ours="N0: " + ", ".join(f"a = {a:g}: {_value(v)} (a/2 = {a / 2:g})" for (_, a), v in values),
        verdict=share_verdict(over),
        note=f"N0 above a/2 on every seed at {sum(over)} of {len(over)} values of a",
        value=float(min(v.min() / (a / 2) for (_, a), v in values)),
        spread=f"mean (range) over {len(SEEDS)} seeds of data",
    )


def controls_separate(metric: str, label: str) -> Measure:
    """The measure: every control's ``metric`` above every sparse-linear set's, on every seed."""

    def measure(model: str, store: Store, report: Progress) -> Measurement:
        values = by_dataset(grids(store, report), metric)
        sparse = {key: v for key, v in values.items() if key[0] == "sparse_linear"}
        (_, a_high), highest = max(sparse.items(), key=lambda item: item[1].max())
        controls = {key[0]: v for key, v in values.items() if key[0] != "sparse_linear"}
        separated = [bool(v.min() > highest.max()) for v in controls.values()]
        return Measurement(
            ours=", ".join(f"{name} {_value(v)}" for name, v in controls.items())
            + f"; sparse-linear sets up to {_value(highest)} (a = {a_high:g})",
            verdict=share_verdict(separated),
            note=f"{sum(separated)} of {len(separated)} controls score less sparse ({label}) than every sparse-linear set",
            value=float(sum(separated)),
            spread=f"mean (range) over {len(SEEDS)} seeds of data",
        )

    return measure


def control_not_told_apart(metric: str, label: str, control: str) -> Measure:
    """The measure: on how many seeds ``control``'s ``metric`` falls inside the sparse-linear sets'
    range (the metric cannot tell that control from sparse data), and whether every other control
    lies outside it."""

    def measure(model: str, store: Store, report: Progress) -> Measurement:
        values = by_dataset(grids(store, report), metric)
        sparse = np.stack([v for key, v in sorted(values.items()) if key[0] == "sparse_linear"])  # (a values, seeds)
        low, high = sparse.min(axis=0), sparse.max(axis=0)
        controls = {key[0]: v for key, v in values.items() if key[0] != "sparse_linear"}
        inside = [bool(lo <= x <= hi) for x, lo, hi in zip(controls[control], low, high)]
        others = {name: v for name, v in controls.items() if name != control}
        apart = [name for name, v in others.items() if not any(lo <= x <= hi for x, lo, hi in zip(v, low, high))]
        return Measurement(
            ours=", ".join(f"{name} {_value(v)}" for name, v in controls.items())
            + f"; sparse-linear sets {_value(low)} to {_value(high)} (a = 1 to 20)",
            verdict=share_verdict(inside),
            note=f"{control} inside the sparse-linear range on {sum(inside)} of {len(inside)} seeds; "
            f"outside it: {', '.join(apart) or 'no other control'}",
            value=float(np.mean(controls[control])),
            spread=f"mean (range) over {len(SEEDS)} seeds of data; the range is each seed's over the sparse-linear sets",
        )

    return measure


SETTINGS = (
    "the sparsity.synthetic job at the paper's setting (d = 256, n = 16,384, sigma = 0.1, 4d true features, dictionary 8d), "
    f"a in 1, 2, 5, 10, 15, 20 and the three controls, seeds {', '.join(map(str, SEEDS))}"
)
CODING = (
    "the coding is the lab's (the dictionary step is block-coordinate descent on running averages, Mairal et al., not the "
    "paper's SGD steps; a deliberately large first lambda; atom resampling): see README, how our coding departs"
)
for key, metric, label, where in (
    ("sparsity.s1_tracks_a", "s_p", "S1", "§3.1, Figure 1(a)"),
    ("sparsity.lnorm_tracks_a", "normalized_loss", "L_norm", "§3.1, Figure 1(a)"),
):
    declare(
        Finding(
            key=key,
            paper="sparsity",
            claim=f"{label} predicts the true sparsity a/2 of sparse-linear data",
            where=where,
            paper_value=f"{label} close to a/2 over a = 1..20",
            settings=SETTINGS,
            tolerance=f"within {TRACKS:.0%} of a/2 at every a: reproduces; at some: partly",
            measure=tracks_half_a(metric, label),
            models=(NO_MODEL,),
            expected={NO_MODEL: "partly"},
            view=VIEW,
            minutes=3.0 if metric == "s_p" else 0.1,
            departure=CODING
            + (
                "; a/2 is the truth only for a of about 5 and up (S1 divides by each code's largest coefficient, "
                "and the largest of a few U(0, 1) draws is well below 1)"
                if metric == "s_p"
                else "; L_norm also counts the noise no sparse code explains (sigma = 0.1), which lifts it above S1"
            ),
        )
    )
declare(
    Finding(
        key="sparsity.n0_overestimates",
        paper="sparsity",
        claim="N0, the non-zero entries per code, overestimates the true sparsity",
        where="§3.1, Appendix D",
        paper_value="N0 well above a/2",
        settings=SETTINGS,
        tolerance="N0 > a/2 on every seed at every a (some a: partly)",
        measure=n0_overestimates,
        models=(NO_MODEL,),
        expected={NO_MODEL: "reproduces"},
        view=VIEW,
        minutes=0.1,
        departure=CODING,
    )
)
for key, metric, label in (
    ("sparsity.controls_separate_lnorm", "normalized_loss", "L_norm"),
    ("sparsity.controls_separate_s1", "s_p", "S1"),
):
    declare(
        Finding(
            key=key,
            paper="sparsity",
            claim=f"{label} tells sparse-linear data from non-sparse controls (Gaussian, heavy-tailed, Rademacher)",
            where="§3.1, Figure 1(b)",
            paper_value="both clearly distinguish every control from the sparse-linear sets",
            settings=SETTINGS,
            tolerance=f"every control's {label} above the largest sparse-linear set's on every seed (some controls: partly)",
            measure=controls_separate(metric, label),
            models=(NO_MODEL,),
            expected={NO_MODEL: "partly"},
            view=VIEW,
            minutes=0.1,
            departure=CODING,
        )
    )
separations: tuple[tuple[str, str, str, str, str, Verdict, str], ...] = (
    ("sparsity.n0_misses_heavy_tailed", "n0", "N0", "heavy_tailed", "the heavy-tailed (non-sparse) control", "reproduces", CODING),
    (
        "sparsity.final_loss_misses_gaussian",
        "final_loss",
        "the final loss",
        "gaussian",
        "the Gaussian control",
        "contradicted",
        CODING + "; the final loss carries lambda, which the lab sets per data set (adaptive), so each set's loss is at its own lambda",
    ),
)
for key, metric, label, control, name, verdict, departure in separations:
    declare(
        Finding(
            key=key,
            paper="sparsity",
            claim=f"{label[0].upper() + label[1:]} cannot reliably tell {name} from sparse-linear data (why the paper "
            "normalises its metrics)",
            where="Appendix D, Figure 4",
            paper_value=f"{name} inside the sparse-linear sets' range of {label}",
            settings=SETTINGS + "; every set centred and scaled to mean norm 1 (the paper's, for final losses to compare)",
            tolerance=f"{name}'s {label} between the smallest and largest sparse-linear set's on every seed (some seeds: partly)",
            measure=control_not_told_apart(metric, label, control),
            models=(NO_MODEL,),
            expected={NO_MODEL: verdict},
            view=VIEW,
            minutes=0.1,
            departure=departure,
        )
    )
