"""Reading a perturbation sweep against its controls: bands over seeds and noise draws, and a
per-layer summary with intervals (thesis 4.3, with the shuffled-label control beside the permuted one).

A sweep's rows carry, per target (``real``, ``permuted``, ``shuffled_labels``) and replicate (the
control's seed), the re-optimisation distance of every noise draw. Everything here uses the rows
of ``curves_of_best``: per kernel, the real target's best configuration, applied to every target.

- A *band* (per target, kernel and sigma) is the spread of the distances over replicates and
  draws: their mean and central ``level`` percentile range.
- The *summary* (per layer and similarity) averages each (replicate, draw) unit over kernels and
  sigmas and reports each target's mean with the range of its units, the real-minus-control
  differences with theirs, and a rank p-value of the real target among a control's seeds. The real
  target is one configuration: whether it differs from a control is a question about where it
  falls in the control's spread over seeds, not about the uncertainty of the control's mean.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from featgeom_core.energy.sweep import SelectionRule, curves_of_best

TARGETS = ("real", "permuted", "shuffled_labels")
CONTROLS = ("permuted", "shuffled_labels")


def distance_bands(rows: Sequence[dict], similarity: str, layer: int | None = None, level: float = 0.95) -> list[dict[str, Any]]:
    """Per (target, kernel, sigma): ``mean``, ``low``, ``high`` (the central ``level`` range of the
    distances over replicates and draws) and ``n`` (how many distances)."""
    grouped: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for row in curves_of_best(rows, similarity, layer):
        grouped[(row["target"], row["kernel"], row["sigma"])].extend(_draws(row))
    tail = 100 * (1 - level) / 2
    bands = []
    for (target, kernel, sigma), values in sorted(grouped.items(), key=lambda item: (_order(item[0][0]), item[0][1], item[0][2])):
        array = np.asarray(values)
        low, high = np.percentile(array, [tail, 100 - tail])
        bands.append(
            {
                "target": target,
                "kernel": kernel,
                "sigma": sigma,
                "mean": float(array.mean()),
                "low": float(low),
                "high": float(high),
                "n": int(array.size),
            }
        )
    return bands


def real_below_control_bands(rows: Sequence[dict], similarity: str, layer: int | None = None, level: float = 0.95) -> dict[str, bool]:
    """Per control present: whether the real curve lies below that control's band at every
    (kernel, sigma), i.e. the real mean distance is under the band's lower edge."""
    bands = distance_bands(rows, similarity, layer, level)
    real = {(b["kernel"], b["sigma"]): b["mean"] for b in bands if b["target"] == "real"}
    verdict: dict[str, bool] = {}
    for control in CONTROLS:
        lows = {(b["kernel"], b["sigma"]): b["low"] for b in bands if b["target"] == control}
        if lows:
            verdict[control] = all(real[key] < low for key, low in lows.items() if key in real)
    return verdict


def _draws(row: dict) -> list[float]:
    return list(row.get("distances") or [row["distance"]])


def _order(target: str) -> int:
    return TARGETS.index(target) if target in TARGETS else len(TARGETS)


def unit_values(curve_rows: Sequence[dict], target: str) -> np.ndarray:
    """One value per (replicate, draw) of ``target``: its distance averaged over kernels and sigmas."""
    per_unit: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in curve_rows:
        if row["target"] == target:
            for draw, value in enumerate(_draws(row)):
                per_unit[(row.get("replicate", 0), draw)].append(value)
    return np.asarray([np.mean(values) for _, values in sorted(per_unit.items())])


def seed_values(curve_rows: Sequence[dict], target: str) -> np.ndarray:
    """One value per replicate (seed) of ``target``: its distance averaged over kernels, sigmas and draws."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for row in curve_rows:
        if row["target"] == target:
            per_seed[row.get("replicate", 0)].extend(_draws(row))
    return np.asarray([np.mean(values) for _, values in sorted(per_seed.items())])


def control_summary(rows: Sequence[dict], level: float = 0.95, rule: SelectionRule = "joint_fit") -> list[dict[str, Any]]:
    """Per (layer, similarity), on the curves of the configurations ``rule`` picks (``curves_of_best``),
    from the units of ``unit_values``:

    - ``<target>``: the mean distance; ``<target>_low``/``_high``: the central ``level`` range of its
      units (replicates x draws: a band, not the uncertainty of the mean); ``<target>_units``.
    - ``real_minus_<control>``: the real mean minus the control's, with the central range of
      (real unit - control unit) over all pairs; ``real_closer_than_<control>`` when that whole
      range lies below 0.
    - ``rank_p_<control>``: (1 + seeds whose distance is at most the real one) / (seeds + 1), the
      permutation p-value of "the real target is closer to an energy minimum than this control's
      seeds". With S seeds it cannot go below 1 / (S + 1); use more seeds for a stronger statement.
    """
    tail = 100 * (1 - level) / 2
    layers = sorted({row.get("layer") for row in rows}, key=lambda layer: (layer is None, layer))
    summary = []
    for layer in layers:
        for similarity in sorted({row["similarity"] for row in rows if row.get("layer") == layer}):
            curve = curves_of_best(rows, similarity, layer, rule)
            entry: dict[str, Any] = {"layer": layer, "similarity": similarity}
            units = {target: unit_values(curve, target) for target in TARGETS}
            units = {target: values for target, values in units.items() if len(values)}
            for target, values in units.items():
                low, high = np.percentile(values, [tail, 100 - tail])
                entry.update(
                    {
                        target: float(values.mean()),
                        f"{target}_low": float(low),
                        f"{target}_high": float(high),
                        f"{target}_units": int(len(values)),
                    }
                )
            for control in CONTROLS:
                if "real" not in units or control not in units:
                    continue
                differences = (units["real"][:, None] - units[control][None, :]).ravel()
                low, high = np.percentile(differences, [tail, 100 - tail])
                seeds = seed_values(curve, control)
                entry.update(
                    {
                        f"real_minus_{control}": entry["real"] - entry[control],
                        f"real_minus_{control}_low": float(low),
                        f"real_minus_{control}_high": float(high),
                        f"real_closer_than_{control}": bool(high < 0),
                        f"rank_p_{control}": float((1 + np.sum(seeds <= entry["real"])) / (len(seeds) + 1)),
                    }
                )
            summary.append(entry)
    return summary


def joint_error_bands(best: Sequence[dict], level: float = 0.95) -> list[dict[str, Any]]:
    """The best fit's joint error per (layer, similarity, kernel, target), over replicates:
    ``mean``, ``low``, ``high``, ``n`` (the thesis's error per feature pair, by layer)."""
    grouped: dict[tuple, list[float]] = defaultdict(list)
    for row in best:
        grouped[(row.get("layer"), row["similarity"], row["kernel"], row["target"])].append(row["joint_error"])
    tail = 100 * (1 - level) / 2
    out = []
    for (layer, similarity, kernel, target), values in grouped.items():
        array = np.asarray(values)
        low, high = np.percentile(array, [tail, 100 - tail])
        out.append(
            {
                "layer": layer,
                "similarity": similarity,
                "kernel": kernel,
                "target": target,
                "mean": float(array.mean()),
                "low": float(low),
                "high": float(high),
                "n": int(array.size),
            }
        )
    return sorted(out, key=lambda r: (r["similarity"], r["kernel"], _order(r["target"]), (r["layer"] is None, r["layer"])))
