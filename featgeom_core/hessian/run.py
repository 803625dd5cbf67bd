"""The Hessian job kind's computation: validated params in, a result out."""

from __future__ import annotations

import time
from dataclasses import replace

from featgeom_core.errors import DataError
from featgeom_core.hessian.fit import fit_hessian_features
from featgeom_core.hessian.language import TokenBatch
from featgeom_core.hessian.params import (
    HessianFeaturesParams,
    LanguageTarget,
    ToyTarget,
)
from featgeom_core.hessian.result import HessianFeaturesResult, TokenSet
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, sub_progress


def _run_toy(target: ToyTarget, report: Progress) -> JobOutput[HessianFeaturesResult]:
    from featgeom_core.hessian.toys import toy_superposition, xor_net

    start = time.perf_counter()
    report(0.0, f"training {target.model}")
    toy = xor_net(target.seed) if target.model == "xor" else toy_superposition(seed=target.seed)
    trained = time.perf_counter() - start
    features = fit_hessian_features(toy.model, target.block_names(), toy.inputs, target.fit, progress=sub_progress(report, 0.05, 1.0))
    result = HessianFeaturesResult(
        features, target.model, toy.description, inputs=toy.inputs.numpy(), timings={"model": trained, "fit": features.seconds}
    )
    return JobOutput(result)


def _run_language(target: LanguageTarget, report: Progress) -> JobOutput[HessianFeaturesResult]:
    from featgeom_core.data.registry import corpus_texts
    from featgeom_core.hessian.language import (
        load_language_model,
        token_curvatures,
        tokenize,
    )

    timings: dict[str, float] = {}
    start = time.perf_counter()
    report(0.0, f"loading {target.model}")
    lm = load_language_model(target.model)
    texts = corpus_texts(None, target.data_seed)
    if target.n_texts + target.heldout_texts > len(texts):
        raise DataError(
            f"n_texts + heldout_texts = {target.n_texts + target.heldout_texts}, but the packaged corpus has {len(texts)} texts"
        )
    train = tokenize(lm.tokenizer, texts[: target.n_texts], target.max_tokens)
    heldout = tokenize(lm.tokenizer, texts[target.n_texts : target.n_texts + target.heldout_texts], target.max_tokens)
    names = lm.canonical(target.block) if target.block else (lm.default_block(target.layer),)
    block = lm.block(names)
    timings["model and texts"] = time.perf_counter() - start
    report(0.02, f"{lm.name}: {train.n_tokens} training tokens in {target.n_texts} texts, block {lm.describe(names)}")
    features = fit_hessian_features(
        lm.module, block, train.inputs, target.fit, progress=sub_progress(report, 0.02, 0.9), position_mask=train.mask
    )
    timings["fit"] = features.seconds
    features = replace(features, curvatures=features.curvatures[train.mask], block=names)
    report(0.9, f"curvatures of {heldout.n_tokens} held-out tokens")
    start = time.perf_counter()
    held = token_curvatures(
        lm.module,
        block,
        heldout,
        features.U,
        batch_size=max(16, target.fit.batch_size),
        method=target.fit.curvature,
        device=target.fit.device,
        progress=sub_progress(report, 0.9, 1.0),
    )
    timings["held-out"] = time.perf_counter() - start
    report(1.0, "done")
    outputs = "final hidden state" if lm.output == "hidden" else "logits"
    if features.divergence == "mse":
        divergence = f"MSE of the {outputs}"
    elif lm.output == "logits":
        divergence = "KL(perturbed || trained) of the next-token distribution"
    else:
        divergence = f"KL of the softmax of the {outputs}"
    description = (
        f"{lm.n_layers} layers, block {lm.describe(names)}; D = {divergence} at each token; {target.n_texts} training and "
        f"{target.heldout_texts} held-out texts of at most {target.max_tokens} tokens"
    )
    result = HessianFeaturesResult(
        features,
        target.model,
        description,
        train_tokens=token_set(train),
        heldout_tokens=token_set(heldout),
        heldout_curvatures=held.double().numpy(),
        output=lm.module.featgeom_output,
        timings=timings,
    )
    return JobOutput(result, fingerprints={"model": lm.fingerprint})


def token_set(batch: TokenBatch) -> TokenSet:
    """The real tokens of a batch, as a result stores them."""
    return TokenSet(batch.token_table(), [list(s) for s in batch.strings], list(batch.texts))


def run_features(params: HessianFeaturesParams, report: Progress) -> JobOutput[HessianFeaturesResult]:
    """The ``hessian.features`` job: train (toys) or load (language models) the model, learn the
    features, read them."""
    from featgeom_core.memory import heap_for_large_tensors

    with heap_for_large_tensors():  # a Dask worker's malloc settings would halve the fit's speed
        if isinstance(params.target, LanguageTarget):
            return _run_language(params.target, report)
        return _run_toy(params.target, report)
