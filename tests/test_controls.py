"""Controls as bands: planted configurations that do and do not sit at an energy minimum, the
per-layer summary with intervals, and the shuffled-label probes behind the third target."""

from __future__ import annotations

import numpy as np
import pytest

from featgeom_core.energy import SweepGrid, SweepTarget, minimize_energy, run_sweep
from featgeom_core.energy.controls import (
    control_summary,
    distance_bands,
    joint_error_bands,
    real_below_control_bands,
)
from featgeom_core.probing import permuted_control, psm

SEEDS = 5


def grid(dim: int) -> SweepGrid:
    """Uniform weights: the planted configurations are minima of the unweighted energy."""
    return SweepGrid(
        kernels=("riesz",),
        similarities=("cosine",),
        dims=(dim,),
        lambda_d=(100.0,),
        lambda_x=(10.0,),
        sigmas=(0.01, 0.1),
        weights="uniform",
    )


def embed(X: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of X placed in R^dim by a random rotation (the geometry is unchanged)."""
    Q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return np.pad(X, ((0, 0), (0, dim - X.shape[1]))) @ Q


def sweep(real: np.ndarray, shuffled: list[np.ndarray], dim: int) -> list[dict]:
    """The sweep the Perturbation page runs: the real directions, SEEDS permuted controls of them,
    and the given shuffled-label directions, all as cosine PSMs."""
    targets = [SweepTarget("real", {"cosine": psm(real)}, layer=0)]
    targets += [SweepTarget("permuted", {"cosine": psm(permuted_control(real, k))}, 0, k) for k in range(SEEDS)]
    targets += [SweepTarget("shuffled_labels", {"cosine": psm(d)}, 0, k) for k, d in enumerate(shuffled)]
    return run_sweep(targets, grid(dim), restarts=4, repeats=3, seed=0).rows


WORLDS = 12


def test_a_real_energy_minimum_lies_below_both_control_bands() -> None:
    """In every planted world, the real PSM is the Riesz minimum (the triangular bipyramid) seen
    through a random rotation in R^64; the shuffled-label targets are random geometry."""
    for world in range(WORLDS // 2):
        rng = np.random.default_rng(world)
        real = embed(minimize_energy(5, 3, "riesz").X, 64, rng)
        shuffled = [embed(rng.normal(size=(5, 3)), 64, rng) for _ in range(SEEDS)]
        rows = sweep(real, shuffled, dim=3)
        assert real_below_control_bands(rows, "cosine", 0) == {"permuted": True, "shuffled_labels": True}, world
        (summary,) = control_summary(rows)
        assert summary["real_closer_than_permuted"] and summary["real_closer_than_shuffled_labels"], world
        assert summary["rank_p_shuffled_labels"] == pytest.approx(1 / (SEEDS + 1))
        assert summary["permuted_units"] == SEEDS * 3 and summary["real_units"] == 3


def test_a_construction_artefact_is_no_closer_than_the_shuffled_label_band() -> None:
    """Real and shuffled-label probes both near a simplex, as balanced one-vs-rest probes are
    whatever the model knows: the real target is one more draw of the construction. It beats the
    permuted control in every world, and the shuffled-label one only as often as chance allows
    (the lowest of S + 1 exchangeable draws: 1 in 6 with 5 seeds)."""
    beats_shuffled = 0
    for world in range(WORLDS):
        rng = np.random.default_rng(100 + world)
        simplex = minimize_energy(5, 4, "riesz").X
        real, *shuffled = [embed(simplex + 0.05 * rng.normal(size=simplex.shape), 64, rng) for _ in range(SEEDS + 1)]
        rows = sweep(real, shuffled, dim=4)
        verdict = real_below_control_bands(rows, "cosine", 0)
        (summary,) = control_summary(rows)
        assert verdict["permuted"] and summary["real_closer_than_permuted"], world
        assert verdict["shuffled_labels"] == summary["real_closer_than_shuffled_labels"], world  # the band and the table agree
        beats_shuffled += summary["real_closer_than_shuffled_labels"]
    assert beats_shuffled <= 5  # binomial(12, 1/6): P(>= 6) < 1%


def test_bands_and_summaries_have_the_shapes_the_pages_draw() -> None:
    rows = []
    for target, replicates, base in (("real", 1, 0.1), ("permuted", 3, 0.5), ("shuffled_labels", 3, 0.2)):
        for r in range(replicates):
            for kernel in ("riesz", "log"):
                for sigma in (0.01, 0.1):
                    draws = [base + 0.01 * r + 0.001 * d + sigma for d in range(4)]
                    rows.append(
                        {
                            "target": target,
                            "replicate": r,
                            "layer": 2,
                            "kernel": kernel,
                            "similarity": "cosine",
                            "dim": 2,
                            "lambda_d": 10.0,
                            "lambda_x": 10.0,
                            "sigma": sigma,
                            "joint_error": base / 10,
                            "distances": draws,
                            "distance": float(np.mean(draws)),
                            "distance_std": 0.0,
                            "fit": 0,
                        }
                    )
    bands = distance_bands(rows, "cosine", 2)
    assert len(bands) == 3 * 2 * 2
    permuted = next(b for b in bands if b["target"] == "permuted" and b["kernel"] == "log" and b["sigma"] == 0.1)
    assert permuted["n"] == 3 * 4 and permuted["low"] <= permuted["mean"] <= permuted["high"]
    (summary,) = control_summary(rows)
    assert summary["real"] == pytest.approx(0.1 + 0.0015 + 0.055)
    assert summary["permuted_units"] == 12 and summary["real_units"] == 4
    errors = joint_error_bands([{**r, "best_index": 0} for r in rows if r["sigma"] == 0.01 and r["kernel"] == "riesz"])
    assert {(e["target"], e["n"]) for e in errors} == {("real", 1), ("permuted", 3), ("shuffled_labels", 3)}


@pytest.mark.slow
def test_shuffled_label_probes_are_trained_once_per_new_seed(tiny_native, store) -> None:
    from featgeom_core.data import load_feature_set
    from featgeom_core.probing import GeometryParams, feature_geometry
    from featgeom_core.probing.controls import (
        label_seeds,
        layer_controls,
        shuffled_label_directions,
    )
    from featgeom_core.probing.params import ControlParams

    fs = load_feature_set("art_type", tokenizer=tiny_native.tokenizer)
    params = GeometryParams()
    result = feature_geometry(tiny_native, fs, [0, 1], params, store=store)
    seeds = label_seeds(params, ControlParams(label_seeds=3))
    assert seeds == [1, 2, 3]
    first = shuffled_label_directions(tiny_native, fs, [0, 1], params, seeds, store=store)
    assert first[1].shape == (3, 3, tiny_native.d_mlp)
    np.testing.assert_array_equal(first[0][0], result.directions["shuffled_labels"][0])  # seed 1 is the probe entry's
    assert not np.allclose(first[0][1], first[0][2])
    messages: list[str] = []
    again = shuffled_label_directions(tiny_native, fs, [0, 1], params, seeds, store=store, progress=lambda f, m, *_: messages.append(m))
    assert messages == ["shuffled-label probes ready"]  # nothing retrained
    np.testing.assert_array_equal(again[1], first[1])
    controls = layer_controls(result, 1, [0, 2], ControlParams(label_seeds=3, permutation_seeds=2), first[1])
    assert controls.names == [result.feature_names[0], result.feature_names[2]]
    assert [len(controls.targets[c]) for c in ("real", "permuted", "shuffled_labels")] == [1, 2, 3]
    np.testing.assert_allclose(controls.targets["permuted"][0]["cosine"], result.psms_at(1, [0, 2])["permuted"]["cosine"])
    assert "shuffled_labels" not in layer_controls(result, 1, [0, 2], ControlParams(shuffled_labels=False), first[1]).targets
