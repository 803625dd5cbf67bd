"""The features view as a job: ``features.corpus`` (packaged text read at one layer of a model,
the contexts a probe direction's page ranks; stored once, then opened in milliseconds)."""

from __future__ import annotations

from featgeom_core.features.params import CorpusParams
from featgeom_core.features.result import CorpusTokens
from featgeom_core.features.run import run_corpus
from featgeom_core.jobs.protocol import JobKind, register

FEATURE_CORPUS = register(
    JobKind(
        "features.corpus",
        "token activations of packaged text at one layer (a feature page's contexts)",
        CorpusParams,
        run_corpus,
        CorpusTokens,
        page=None,
        example={"model": "tiny-native", "layer": 0, "n_texts": 6, "max_tokens": 16},
    )
)
