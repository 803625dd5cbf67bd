"""Sparsity of a real model's activations (section 4): the token embeddings (4.1) and every layer
(4.2), each with its own dictionary, plus what the dictionary explorer (Appendix G) reads.

Layers are trained in lockstep on fresh activations: every iteration runs the model once on new
training text and hands each layer's learner its own minibatch, as the paper resamples activations
each iteration. The metrics are measured on a held-out set of tokens (``tokens``), whose codes and
per-atom top tokens are kept for the explorer. The embeddings learner codes minibatches of the
embedding matrix's rows (a fixed set).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse

from featgeom_core.activations import TokenActivations, token_activations
from featgeom_core.data.registry import corpus_texts
from featgeom_core.errors import InvalidParameter
from featgeom_core.memory import release_memory, spill
from featgeom_core.models import LoadedModel
from featgeom_core.progress import Progress, silent
from featgeom_core.sparsity.coding import (
    DictionaryLearner,
    check_activations,
    encode,
    minibatches,
)
from featgeom_core.sparsity.metrics import metrics_from_parts
from featgeom_core.sparsity.params import APPENDIX_H_TRAINING_LAMBDA, APPENDIX_H_VARIANCE, ModelSparsityParams
from featgeom_core.sparsity.result import (
    ActivationSetResult,
    ModelSparsityResult,
    SparseCode,
)

EMBEDDINGS = "embeddings"
TOP_TOKENS = 24  # per atom, for the explorer
FORWARD_BATCH = 16  # texts per forward pass: small, to keep the transient memory of the model low
TEXTS_PER_SOURCE = 3000  # 15,000 texts of up to 128 tokens: far more than held-out plus training need


def set_name(layer: int) -> str:
    """The name of a layer's activation set."""
    return f"layer {layer}"


def set_layer(name: str) -> int:
    """The inverse of :func:`set_name`: ``layer 6`` -> 6, and ``embeddings`` (the token matrix) -> -1."""
    return -1 if name == EMBEDDINGS else int(name.split()[-1])


def top_rows_per_atom(codes: scipy.sparse.csr_array, k: int = TOP_TOKENS) -> tuple[np.ndarray, np.ndarray]:
    """For each atom, the k rows with its largest coefficients: (m, k) row indices (-1 when the atom
    has fewer uses) and (m, k) coefficients."""
    columns = codes.tocsc()
    m = codes.shape[1]
    rows = np.full((m, k), -1, dtype=np.int64)
    values = np.zeros((m, k), dtype=np.float32)
    for atom in range(m):
        start, end = columns.indptr[atom], columns.indptr[atom + 1]
        if end == start:
            continue
        order = np.argsort(-columns.data[start:end])[:k]
        rows[atom, : len(order)] = columns.indices[start:end][order]
        values[atom, : len(order)] = columns.data[start:end][order]
    return rows, values


def _finish(
    name: str, learner: DictionaryLearner, data: np.ndarray, center: np.ndarray, params: ModelSparsityParams
) -> ActivationSetResult:
    """Code the held-out set with the learned dictionary and measure it (at the training lambda, or
    Appendix H's decomposition lambda)."""
    coding = params.effective_coding()
    lam = learner.lam if params.recipe == "lab" else decomposition_lambda(data, learner.dictionary, params)
    codes, residual2 = encode(data, learner.dictionary, lam, coding)
    metrics = metrics_from_parts(codes, float(residual2.sum()), float(np.sum(data.astype(np.float64) ** 2)), lam, params.p)
    top_rows, top_values = top_rows_per_atom(codes)
    code = SparseCode(
        dictionary=learner.dictionary,
        codes=codes,
        lam=lam,
        method=coding.method,
        center=center,
        lambdas=learner.lambdas,
        losses=learner.losses,
    )
    scalars = {key: float(value) for key, value in metrics.items() if np.ndim(value) == 0}
    return ActivationSetResult(
        name, code, scalars, metrics["usage"], metrics["histogram"], metrics["histogram_edges"], top_rows, top_values
    )


def decomposition_lambda(data: np.ndarray, dictionary: np.ndarray, params: ModelSparsityParams, sample: int = 2048) -> float:
    """Appendix H's decomposition lambda: ``params.decomposition_lambda`` when given, else the largest
    0.1 x 2^-k (k = 0..16) at which coding a sample of the held-out activations (n, d), centred,
    explains at least 98% of their variance (the paper fixed one such lambda per model)."""
    if params.decomposition_lambda is not None:
        return params.decomposition_lambda
    rows = data[np.random.default_rng(params.seed).permutation(len(data))[:sample]]
    total = float(np.sum(rows.astype(np.float64) ** 2))
    coding = params.effective_coding()
    lam = APPENDIX_H_TRAINING_LAMBDA
    for _ in range(17):
        _, residual2 = encode(rows, dictionary, lam, coding)
        if total == 0 or 1.0 - float(residual2.sum()) / total >= APPENDIX_H_VARIANCE:
            return lam
        lam /= 2
    return lam


def model_sparsity(model: LoadedModel, params: ModelSparsityParams, progress: Progress | None = None) -> ModelSparsityResult:
    """Dictionaries and metrics for the token embeddings and every chosen layer of ``model``."""
    report = progress or silent
    layers = params.chosen_layers(model.n_layers)
    texts = list(corpus_texts(TEXTS_PER_SOURCE, seed=params.seed))
    report(0.0, f"held-out activations: {params.tokens} tokens at {len(layers)} layers")
    held_out = token_activations(
        model, texts, layers, params.hook, max_tokens=params.max_tokens_per_text, max_total_tokens=params.tokens, batch_size=FORWARD_BATCH
    )
    if len(held_out.text) < params.tokens:
        raise InvalidParameter(f"the packaged text gave {len(held_out.text)} tokens, fewer than the {params.tokens} asked for")
    used_texts = int(held_out.text.max()) + 1
    with tempfile.TemporaryDirectory(prefix="featgeom-held-out-") as folder:
        return _train_and_code(model, params, held_out, texts, used_texts, Path(folder), report)


def _train_and_code(
    model: LoadedModel,
    params: ModelSparsityParams,
    held_out: TokenActivations,
    texts: list[str],
    used_texts: int,
    folder: Path,
    report: Progress,
) -> ModelSparsityResult:
    """Train every layer's dictionary on fresh text, with the held-out activations spilled to
    ``folder`` meanwhile (SmolLM2's 8 layers: 0.3 GB), then code and measure them."""
    layers = params.chosen_layers(model.n_layers)
    coding = params.effective_coding()
    spilled: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # layer -> (centred activations on disk, centre)
    for layer in layers:
        data = check_activations(held_out.values.pop(layer), f"layer {layer} activations")
        center = data.mean(axis=0) if coding.center else np.zeros(data.shape[1], dtype=np.float32)
        coding.check_sizes(len(data), data.shape[1])
        data -= center
        spilled[layer] = (spill(data, folder, f"layer{layer}"), center)
        del data
    release_memory()
    training = _training_batches(model, texts[used_texts:], layers, params)
    first = next(training)
    sets = {
        set_name(layer): (DictionaryLearner(first[layer] - center, coding, coding.iterations(len(data))), data, center)
        for layer, (data, center) in spilled.items()
    }
    planned = max(learner.planned for learner, _, _ in sets.values())
    step = 0
    while not all(learner.done for learner, _, _ in sets.values()):
        batch = next(training)
        step += 1
        for name, (learner, _, center) in sets.items():
            if not learner.done:
                line = learner.step(batch[set_layer(name)] - center)
                report(0.05 + 0.6 * min(step / planned, 1.0), f"{name}: {line}")
    release_memory()
    results = []
    if params.embeddings:
        results.append(_embedding_set(model, params, lambda f, m, *_: report(0.65 + 0.15 * f, f"embeddings: {m}")))
    for k, (name, (learner, data, center)) in enumerate(sets.items()):
        report(0.8 + 0.15 * k / len(sets), f"{name}: coding the {len(data)} held-out tokens")
        results.append(_finish(name, learner, data, center, params))
    tokenizer = model.tokenizer
    return ModelSparsityResult(
        model=model.name,
        hook=params.hook,
        sets=results,
        token_text=held_out.text,
        token_position=held_out.position,
        token_id=held_out.token_id,
        token_strings=[str(t) for t in tokenizer.convert_ids_to_tokens(held_out.token_id.tolist())],
        texts=texts[:used_texts],
        vocabulary=[str(t) for t in tokenizer.convert_ids_to_tokens(list(range(int(model.bridge.W_E.shape[0]))))],
    )


def _training_batches(
    model: LoadedModel, texts: list[str], layers: list[int], params: ModelSparsityParams
) -> Iterator[dict[int, np.ndarray]]:
    """Fresh activations for every layer, ``batch_size`` tokens at a time, from texts not held out.
    Tokens a forward pass gave beyond a batch open the next one: every token computed is used once
    (a batch's texts give ~1.6x its tokens; dropping the rest wasted 40% of the forward passes)."""
    batch = params.coding.batch_size
    position = 0
    texts_per_batch = max(1, batch // 48)  # about 48+ real tokens per text; topped up below
    carried: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    while True:
        chunk = carried
        have = len(chunk[layers[0]][0]) if chunk[layers[0]] else 0
        while have < batch:
            if position >= len(texts):
                raise InvalidParameter("the packaged text ran out before the dictionaries settled; lower epochs or tokens")
            part = token_activations(
                model,
                texts[position : position + texts_per_batch],
                layers,
                params.hook,
                max_tokens=params.max_tokens_per_text,
                batch_size=FORWARD_BATCH,
            )
            position += texts_per_batch
            for layer in layers:
                chunk[layer].append(part.values[layer])
            have += len(part.text)
        joined = {layer: np.concatenate(chunk[layer]) for layer in layers}
        carried = {layer: [joined[layer][batch:]] if have > batch else [] for layer in layers}
        release_memory()
        yield {layer: joined[layer][:batch] for layer in layers}


def _embedding_set(model: LoadedModel, params: ModelSparsityParams, progress: Progress) -> ActivationSetResult:
    """The token embedding matrix (vocabulary, d) as the activation set (section 4.1), centred."""
    embedding = check_activations(model.bridge.W_E.detach().float().cpu().numpy(), "the token embeddings")
    coding = params.effective_coding()
    coding.check_sizes(*embedding.shape)
    center = embedding.mean(axis=0)
    data = embedding - center
    batch = min(coding.batch_size, len(data))
    order = minibatches(len(data), batch, np.random.default_rng(coding.seed + 1))
    learner = DictionaryLearner(data[next(order)], coding, coding.iterations(len(data)))
    done = 0
    while not learner.done:
        line = learner.step(data[next(order)])
        done += 1
        progress(min(done / learner.planned, 1.0), line)
    return _finish(EMBEDDINGS, learner, data, center, params)
