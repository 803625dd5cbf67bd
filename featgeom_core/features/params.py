"""The features view's params: which packaged text to read at which layer (the contexts a probe
direction's page ranks). A feature itself is named by its link, :class:`~.ref.FeatureRef`."""

from __future__ import annotations

from pydantic import Field

from featgeom_core.activations import Hook
from featgeom_core.models.ids import ModelId
from featgeom_core.params import Params

CORPUS_TEXTS = 128
"""Texts of the packaged news, reviews and code (a third each): ~6,000 tokens, seconds on a CPU."""
CORPUS_MAX_TOKENS = 64


class CorpusParams(Params):
    """Token activations of packaged text at one hook and layer of a model."""

    model: ModelId = Field("minilm", description="a model id, local checkpoint directory or hub id")
    hook: Hook = Field("resid_post", description="resid_post (the residual stream after the block) or mlp_post (the MLP's hidden units)")
    layer: int = Field(0, ge=0, le=1000, description="the block whose output (or MLP) is read")
    n_texts: int = Field(CORPUS_TEXTS, ge=1, le=3000, description="packaged texts read, a third from each source")
    max_tokens: int = Field(CORPUS_MAX_TOKENS, ge=2, le=512, description="tokens kept per text")
