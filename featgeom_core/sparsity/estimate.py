"""How long a sparsity-by-layer job takes on this lab's 2-core CPU, said before the click.

Fitted to two measured runs of the lab recipe with calibration (benchmarks/RESULTS.md): MiniLM's
defaults (d = 384, the embeddings and 6 layers, 16,384 tokens) 271 s, SmolLM2's (d = 576, the
embeddings and 8 layers) 745 s. Per activation set the cost grows with the tokens and about as
m^1.9 for m = 8d atoms (the dictionary's m x m statistics and the greedy steps over them): 38.7 s a set at
d = 384. A GPU, fewer tokens or no calibration make it shorter; this is the CPU's upper figure.
"""

from __future__ import annotations

from featgeom_core.sparsity.params import ModelSparsityParams

SECONDS_PER_SET_AT_384 = 271.0 / 7
WIDTH_EXPONENT = 1.9
REFERENCE_TOKENS = 16384
REFERENCE_MULTIPLE = 8.0


def estimated_seconds(params: ModelSparsityParams, width: int, n_layers: int) -> float:
    """Seconds a job with ``params`` takes on a 2-core CPU, about: ``width`` is the activation
    width the hook gives (d_model for resid_post, d_mlp for mlp_post), ``n_layers`` the model's."""
    sets = len(params.chosen_layers(n_layers)) + int(params.embeddings)
    multiple = params.effective_coding().dictionary_multiple / REFERENCE_MULTIPLE
    return SECONDS_PER_SET_AT_384 * sets * (params.tokens / REFERENCE_TOKENS) * (width / 384) ** WIDTH_EXPONENT * multiple**WIDTH_EXPONENT


def say_duration(seconds: float) -> str:
    """``about 40 s`` / ``about 5 min`` / ``about 1.5 h``."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
