"""How long a sparsity-by-layer job takes on this lab's 2-core CPU, said before the click.

Fitted to measured runs of the lab recipe (benchmarks/RESULTS.md). MiniLM's defaults (d = 384,
the embeddings and 6 layers, 16,384 tokens, calibration included) took 271 s on the reference
machine, SmolLM2's (d = 576, the embeddings and 8 layers) 745 s. On a faster machine the same
MiniLM job took 185 s, of which the synthetic calibration was 80 s (43%); the calibration alone
took 79 s at d = 384 and 240 s at d = 576 there (its Gaussian control's dense codes grow faster
with the width than a layer's). Per activation set the cost grows with the tokens and about as
m^1.9 for m = 8d atoms (the dictionary's m x m statistics and the greedy steps over them); the
calibration as d^2.7. A stored calibration (one per width, tokens, coding and seed) costs nothing.
A GPU or fewer tokens make it shorter; this is the CPU's upper figure.
"""

from __future__ import annotations

from featgeom_core.sparsity.params import ModelSparsityParams

REFERENCE_SECONDS = 271.0
"""MiniLM's defaults on the reference 2-core machine: 7 activation sets and the calibration at d = 384."""
CALIBRATION_SHARE = 80.0 / 185.0
"""The calibration's share of that job (measured on one machine, both parts in one run)."""
SECONDS_PER_SET_AT_384 = REFERENCE_SECONDS * (1 - CALIBRATION_SHARE) / 7
CALIBRATION_SECONDS_AT_384 = REFERENCE_SECONDS * CALIBRATION_SHARE
WIDTH_EXPONENT = 1.9
CALIBRATION_EXPONENT = 2.7
"""log(240 / 79) / log(576 / 384): the two calibrations measured in one run."""
REFERENCE_TOKENS = 16384
REFERENCE_MULTIPLE = 8.0


def estimated_seconds(params: ModelSparsityParams, width: int, n_layers: int, calibration_stored: bool = False) -> float:
    """Seconds a job with ``params`` takes on a 2-core CPU, about: ``width`` is the activation
    width the hook gives (d_model for resid_post, d_mlp for mlp_post), ``n_layers`` the model's;
    ``calibration_stored``: an earlier job stored the calibration these sets need (it is read, not run)."""
    sets = len(params.chosen_layers(n_layers)) + int(params.embeddings)
    multiple = params.effective_coding().dictionary_multiple / REFERENCE_MULTIPLE
    tokens = params.tokens / REFERENCE_TOKENS
    seconds = SECONDS_PER_SET_AT_384 * sets * tokens * (width / 384) ** WIDTH_EXPONENT * multiple**WIDTH_EXPONENT
    if params.calibrate and not calibration_stored:
        seconds += CALIBRATION_SECONDS_AT_384 * tokens * (width / 384) ** CALIBRATION_EXPONENT * multiple**WIDTH_EXPONENT
    return seconds


def say_duration(seconds: float) -> str:
    """``about 40 s`` / ``about 5 min`` / ``about 1.5 h``."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
