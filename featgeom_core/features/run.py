"""The features view's job kind's computation: validated params in, a result out."""

from __future__ import annotations

from featgeom_core.features.corpus import corpus_tokens
from featgeom_core.features.params import CorpusParams
from featgeom_core.features.result import CorpusTokens
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, sub_progress


def run_corpus(params: CorpusParams, report: Progress) -> JobOutput[CorpusTokens]:
    """The ``features.corpus`` job: packaged text's token activations at one layer of a model."""
    from featgeom_core.models import shared_model

    report(0.0, f"loading {params.model}")
    model = shared_model(params.model)
    report(0.1, f"reading {params.n_texts} packaged texts at {params.hook} of layer {params.layer}")
    result = corpus_tokens(model, params, sub_progress(report, 0.1, 1.0))
    report(1.0, f"{len(result.text)} tokens")
    return JobOutput(result, fingerprints={"model": model.fingerprint})
