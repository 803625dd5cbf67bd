"""What an interaction graph is built on: the model a graph job's target names (ours, trained here
or by a finished training job, an uploaded or local state dict, or a language model's block), with
its data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.interaction.checkpoints import read_state_dict, uploads_dir
from featgeom_core.interaction.digits import digits_data, load_digits_mlp
from featgeom_core.interaction.modadd import (
    load_modular_addition,
    modular_addition_data,
)
from featgeom_core.interaction.params import (
    SCRATCH,
    TRAIN_JOB_PREFIX,
    TRAINED,
    UPLOAD_PREFIX,
    DigitsTarget,
    GraphTarget,
    LanguageTarget,
    ModAddTarget,
)
from featgeom_core.interaction.result import TrainedModel
from featgeom_core.jobs.protocol import StoreEntry
from featgeom_core.progress import Progress, silent
from featgeom_core.store import Store


@dataclass(frozen=True)
class LoadedModel:
    """A model with its training split (for the bases) and test split (for ablations); ``trained``
    is the store entry of a model trained for this job (kept, so the next job reuses it)."""

    model: Any
    basis_inputs: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor | None
    modulus: int | None
    trained: StoreEntry | None = None


def _trained(target: ModAddTarget | DigitsTarget, report: Progress, store: Store) -> tuple[TrainedModel, StoreEntry | None]:
    """Our model with the target's recipe: the shipped one (checkpoint ``trained`` where the package
    ships the recipe's), the stored one, or trained now (with its entry)."""
    from featgeom_core.interaction.jobs import LIB_TRAIN_DIGITS, LIB_TRAIN_MODADD
    from featgeom_core.interaction.shipped import shipped_modadd

    if isinstance(target, ModAddTarget) and target.checkpoint == TRAINED:
        shipped = shipped_modadd(target.train)
        if shipped is not None:
            report(1.0, "using the lab's shipped checkpoint (the peer's recipe, seed 0)")
            return shipped, None

    cached = (
        LIB_TRAIN_MODADD.cached(target.train, store) if isinstance(target, ModAddTarget) else LIB_TRAIN_DIGITS.cached(target.train, store)
    )
    if cached is not None:
        report(1.0, "using the stored trained model")
        return cached, None
    if isinstance(target, ModAddTarget):
        trained = LIB_TRAIN_MODADD.run(target.train, report).result
        return trained, LIB_TRAIN_MODADD.entry(target.train, trained)
    trained = LIB_TRAIN_DIGITS.run(target.train, report).result
    return trained, LIB_TRAIN_DIGITS.entry(target.train, trained)


def _state_from_checkpoint(checkpoint: str, store: Store) -> dict[str, torch.Tensor]:
    """The state dict a non-'trained' checkpoint reference names."""
    from featgeom_core.interaction.jobs import LIB_TRAIN_DIGITS, LIB_TRAIN_MODADD
    from featgeom_core.jobs import manager

    if checkpoint.startswith(TRAIN_JOB_PREFIX):
        job_id = checkpoint[len(TRAIN_JOB_PREFIX) :]
        record = manager.status(job_id, store)
        if record.kind not in (LIB_TRAIN_MODADD.name, LIB_TRAIN_DIGITS.name) or record.status != "done":
            raise DataError(f"job {job_id} is not a finished LIB training job (it is {record.kind}, {record.status})")
        result = manager.load_result(job_id, store)
        assert isinstance(result, TrainedModel)
        return result.torch_state()
    if checkpoint.startswith(UPLOAD_PREFIX):
        return read_state_dict(uploads_dir(store) / f"{checkpoint[len(UPLOAD_PREFIX) :]}.pt")
    return read_state_dict(Path(checkpoint).expanduser())


def load_target(target: GraphTarget, report: Progress | None = None, store: Store | None = None) -> LoadedModel:
    """The model ``target`` names, with its data; trains ours on first use (the entry comes back
    in ``trained`` for the caller to store)."""
    report = report or silent
    store = store or Store()
    if isinstance(target, LanguageTarget):
        return load_language_block(target, report)
    trained_entry = None
    if target.checkpoint in (TRAINED, SCRATCH):
        trained, trained_entry = _trained(target, report, store)
        if trained.model != target.kind:
            raise DataError(f"the stored model is a {trained.model} model, not {target.kind}")
        state = trained.torch_state()
    else:
        state = _state_from_checkpoint(target.checkpoint, store)
    if isinstance(target, ModAddTarget):
        model = load_modular_addition(state)
        data = modular_addition_data(model.config.modulus, target.train.frac_train, target.train.seed)
        return LoadedModel(model, data.train_tokens, data.test_tokens, data.test_labels, model.config.modulus, trained_entry)
    digits = load_digits_mlp(state)
    split = digits_data(target.train.test_fraction, target.train.seed)
    return LoadedModel(digits, split.train_inputs, split.test_inputs, split.test_labels, None, trained_entry)


def load_language_block(target: LanguageTarget, report: Progress | None = None) -> LoadedModel:
    """A language model's block from the model registry, with token windows of the packaged text:
    the first half for the bases and edges, the second for the ablations (no labels: mse)."""
    from featgeom_core.data.registry import corpus_texts
    from featgeom_core.interaction.language import LanguageBlock, token_windows
    from featgeom_core.models import shared_model

    report = report or silent
    report(0.0, f"loading {target.model}")
    loaded = shared_model(target.model)
    if loaded.plain_model is None:
        raise InvalidParameter(
            f"{target.model!r} has no Hugging Face module to read blocks from; LIB's block view needs one (e.g. minilm or smollm2)"
        )
    block = LanguageBlock(loaded.plain_model, target.layer, loaded.name)
    per_source = max(20, (2 * target.windows * target.tokens) // 60)  # texts of each source; a packaged text is ~60 tokens or more
    texts = corpus_texts(per_source, target.text_seed)
    order = np.random.default_rng(target.text_seed).permutation(len(texts))  # news, reviews and code in both halves
    tokens = token_windows(loaded.tokenizer, [texts[i] for i in order], 2 * target.windows, target.tokens)
    report(1.0, f"{target.model} block {target.layer}: {target.windows} windows of {target.tokens} tokens")
    return LoadedModel(block, tokens[: target.windows], tokens[target.windows :], None, None)
