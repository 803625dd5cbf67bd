"""Hooked, batched, device-aware activation extraction at probe positions, cached per layer.

Two engines give identical numbers:
- ``bridge``: TransformerLens ``run_with_cache`` with a ``names_filter`` (only the hooks asked for).
- ``plain``: the same checkpoint as a plain torch module, with forward hooks on the modules
  whose outputs *are* the bridge's hook values, and an early exit after the deepest layer asked
  for. Which module matches a hook is found by comparing values against the bridge on a probe
  batch, never assumed from names, so the mapping holds for any architecture. The bridge's
  hook machinery costs ~2.5x a plain forward, hence this engine; ``auto`` uses it when it matched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from featgeom_core.data.feature_set import LAST_REAL_TOKEN, FeatureSet
from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.models import LoadedModel
from featgeom_core.progress import Progress, silent
from featgeom_core.store import Store, result_key
from featgeom_core.tokens import DEFAULT_MAX_TOKENS, encode

Hook = Literal["mlp_post", "resid_post"]
Engine = Literal["auto", "bridge", "plain"]
HOOK_TEMPLATES: dict[str, str] = {"mlp_post": "blocks.{layer}.mlp.hook_post", "resid_post": "blocks.{layer}.hook_resid_post"}


class _StopForward(Exception):
    """Raised from the deepest hook to skip the layers nobody asked for."""


def hook_name(hook: str, layer: int) -> str:
    """The TransformerLens hook name for a hook kind at a layer."""
    if hook not in HOOK_TEMPLATES:
        raise InvalidParameter(f"unknown hook {hook!r}; use one of {', '.join(HOOK_TEMPLATES)}")
    return HOOK_TEMPLATES[hook].format(layer=layer)


def extract(
    model: LoadedModel,
    feature_set: FeatureSet,
    layers: Sequence[int],
    hook: Hook = "mlp_post",
    *,
    batch_size: int = 64,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    engine: Engine = "auto",
    store: Store | None = None,
    progress: Progress | None = None,
) -> dict[int, np.ndarray]:
    """Activations at the feature set's probe positions: {layer: float32 (n_examples, d)}.

    ``d`` is ``d_mlp`` for ``mlp_post`` and ``d_model`` for ``resid_post``. Layers already in
    ``store`` are read back; the rest come from one forward pass per batch for all of them.
    """
    layers = sorted(set(int(layer) for layer in layers))
    if not layers:
        raise InvalidParameter("choose at least one layer")
    bad = [layer for layer in layers if not 0 <= layer < model.n_layers]
    if bad:
        raise InvalidParameter(f"layer(s) {bad} out of range: {model.name} has layers 0..{model.n_layers - 1}")
    hook_name(hook, 0)
    keys = {
        layer: result_key(
            "activations",
            {"layer": layer, "hook": hook, "max_tokens": max_tokens},
            {"model": model.fingerprint, "features": feature_set.fingerprint()},
        )
        for layer in layers
    }
    found: dict[int, np.ndarray] = {}
    if store is not None:
        for layer in layers:
            cached = store.get(keys[layer], stale_as_missing=True)
            if cached is not None:
                found[layer] = cached.arrays["activations"]
    missing = [layer for layer in layers if layer not in found]
    if missing:
        with model.forward_lock:
            computed = _compute(model, feature_set, missing, hook, batch_size, max_tokens, engine, progress)
        for layer, values in computed.items():
            if store is not None:
                store.put(
                    keys[layer],
                    {"activations": values},
                    {"model": model.name, "layer": layer, "hook": hook, "feature_set": feature_set.name},
                )
            found[layer] = values
    if progress is not None:
        progress(1.0, f"activations ready for layers {layers}")
    return {layer: found[layer] for layer in layers}


def _compute(
    model: LoadedModel,
    feature_set: FeatureSet,
    layers: list[int],
    hook: str,
    batch_size: int,
    max_tokens: int,
    engine: Engine,
    progress: Progress | None,
) -> dict[int, np.ndarray]:
    names = [hook_name(hook, layer) for layer in layers]
    text_ids = np.unique(feature_set.example_text)
    texts = [feature_set.texts[t] for t in text_ids]
    encoded = encode(model.tokenizer, texts, max_tokens=max_tokens)
    row_of_text = {int(t): i for i, t in enumerate(text_ids)}
    rows = np.asarray([row_of_text[int(t)] for t in feature_set.example_text])
    positions = _resolve_positions(feature_set, rows, encoded)

    runner = _choose_runner(model, names, encoded, engine)
    outputs: dict[str, np.ndarray] = {}
    lengths = encoded["attention_mask"].sum(axis=1)
    order = np.argsort(-lengths, kind="stable")  # similar lengths share a batch: less padding
    examples_of_row = _group_by(rows)
    n_batches = (len(order) + batch_size - 1) // batch_size
    with torch.inference_mode():
        for b in range(n_batches):
            batch_rows = order[b * batch_size : (b + 1) * batch_size]
            seq = int(lengths[batch_rows].max())
            ids = torch.as_tensor(encoded["input_ids"][batch_rows, :seq], device=model.device)
            attention = torch.as_tensor(encoded["attention_mask"][batch_rows, :seq], device=model.device)
            example_idx = np.concatenate([examples_of_row[r] for r in batch_rows])
            local_row = np.concatenate([np.full(len(examples_of_row[r]), i) for i, r in enumerate(batch_rows)])
            gather = (torch.as_tensor(local_row, device=model.device), torch.as_tensor(positions[example_idx], device=model.device))
            values = runner(ids, attention, gather)
            for name in names:
                if name not in outputs:
                    outputs[name] = np.zeros((feature_set.n_examples, values[name].shape[-1]), dtype=np.float32)
                outputs[name][example_idx] = values[name].float().cpu().numpy()
            if progress is not None:
                progress((b + 1) / n_batches, f"forward pass: batch {b + 1}/{n_batches}")
    return {layer: outputs[name] for layer, name in zip(layers, names)}


def _resolve_positions(feature_set: FeatureSet, rows: np.ndarray, encoded: dict[str, np.ndarray]) -> np.ndarray:
    positions = feature_set.example_pos.astype(np.int64).copy()
    is_last = positions == LAST_REAL_TOKEN
    positions[is_last] = encoded["last_real"][rows[is_last]]
    lengths = encoded["attention_mask"].sum(axis=1)[rows]
    out_of_range = np.flatnonzero((positions < 0) | (positions >= lengths))
    if len(out_of_range):
        i = int(out_of_range[0])
        raise DataError(
            f"{len(out_of_range)} probe position(s) fall outside their text; e.g. example {i} asks for token "
            f"{int(feature_set.example_pos[i])} of a text with {int(lengths[i])} tokens (special tokens included)"
        )
    return positions


def _group_by(rows: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    unique, starts = np.unique(rows[order], return_index=True)
    return {int(u): order[s:e] for u, s, e in zip(unique, starts, list(starts[1:]) + [len(order)])}


Runner = Callable[[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]], dict[str, torch.Tensor]]


def _choose_runner(model: LoadedModel, names: list[str], encoded: dict[str, np.ndarray], engine: Engine) -> Runner:
    if engine not in ("auto", "bridge", "plain"):
        raise InvalidParameter(f"unknown engine {engine!r}; use auto, bridge or plain")
    if engine == "bridge" or model.plain_model is None:
        if engine == "plain":
            raise InvalidParameter(f"{model.name} has no plain twin; use engine='bridge' or 'auto'")
        return _bridge_runner(model, names)
    modules = resolve_plain_modules(model, names, encoded)
    if modules is None:
        if engine == "plain":
            raise InvalidParameter(f"no module of the plain {model.name} reproduces the hooks {names}")
        return _bridge_runner(model, names)
    return _plain_runner(model, modules)


def _bridge_runner(model: LoadedModel, names: list[str]) -> Runner:
    def run(ids: torch.Tensor, attention: torch.Tensor, gather: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        _, cache = model.bridge.run_with_cache(ids, attention_mask=attention, names_filter=names, return_type=None)
        return {name: cache[name][gather] for name in names}

    return run


def _plain_runner(model: LoadedModel, modules: dict[str, PlainTap]) -> Runner:
    assert model.plain_model is not None
    plain = model.plain_model

    def run(ids: torch.Tensor, attention: torch.Tensor, gather: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        captured: dict[str, torch.Tensor] = {}
        handles = []

        def keep(name: str, value: Any) -> None:
            captured[name] = _first_tensor(value)[gather]
            if len(captured) == len(modules):  # the rest of the forward pass is not needed
                raise _StopForward

        for name, tap in modules.items():
            if tap.reads == "input":
                handles.append(tap.module.register_forward_pre_hook(lambda _m, inputs, name=name: keep(name, inputs)))
            else:
                handles.append(tap.module.register_forward_hook(lambda _m, _inputs, output, name=name: keep(name, output)))
        try:
            plain(input_ids=ids, attention_mask=attention)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return captured

    return run


@dataclass(frozen=True, eq=False)
class PlainTap:
    """Where a bridge hook's value is in the plain model: a module's output, or its first input
    (a Llama MLP's ``hook_post``, act(gate)·up, is no module's output but ``down_proj``'s input)."""

    module: torch.nn.Module
    reads: Literal["output", "input"]


def resolve_plain_modules(model: LoadedModel, names: list[str], encoded: dict[str, np.ndarray]) -> dict[str, PlainTap] | None:
    """For each bridge hook, the first module of the plain model whose output (or, failing every
    output, whose first input) equals it.

    Compared on up to 4 texts of ``encoded`` at real (non-padding) positions, to 1e-4.
    Returns None when some hook has no match (then the bridge engine is used).
    """
    assert model.plain_model is not None
    cache: dict[str, PlainTap] = getattr(model, "_plain_module_cache", {})
    if all(name in cache for name in names):
        return {name: cache[name] for name in names}
    n = min(4, len(encoded["input_ids"]))
    ids = torch.as_tensor(encoded["input_ids"][:n], device=model.device)
    attention = torch.as_tensor(encoded["attention_mask"][:n], device=model.device)
    real = attention.bool()
    with torch.inference_mode():
        _, bridge_cache = model.bridge.run_with_cache(ids, attention_mask=attention, names_filter=names, return_type=None)
        outputs: list[tuple[torch.nn.Module, Any]] = []
        inputs: list[tuple[torch.nn.Module, Any]] = []
        handles = []
        for _, module in model.plain_model.named_modules():
            handles.append(module.register_forward_hook(lambda m, i, o: outputs.append((m, _first_tensor(o)))))
            handles.append(module.register_forward_pre_hook(lambda m, i: inputs.append((m, _first_tensor(i)))))
        try:
            model.plain_model(input_ids=ids, attention_mask=attention)
        finally:
            for handle in handles:
                handle.remove()
    order = {id(m): i for i, (_, m) in enumerate(model.plain_model.named_modules())}
    outputs.sort(key=lambda pair: order[id(pair[0])])
    inputs.sort(key=lambda pair: order[id(pair[0])])

    def equal(value: Any, target: torch.Tensor) -> bool:
        return (
            isinstance(value, torch.Tensor)
            and value.shape == target.shape
            and torch.allclose(value[real], target[real], atol=1e-4, rtol=1e-4)
        )

    for name in names:
        target = bridge_cache[name]
        found = next((PlainTap(m, "output") for m, value in outputs if equal(value, target)), None)
        found = found or next((PlainTap(m, "input") for m, value in inputs if equal(value, target)), None)
        if found is None:
            return None
        cache[name] = found
    setattr(model, "_plain_module_cache", cache)  # noqa: B010  (a cache riding on the instance; LoadedModel declares no such field)
    return {name: cache[name] for name in names}


def _first_tensor(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    return None


@dataclass(frozen=True)
class TokenActivations:
    """Activations at every real (non-special) token of some texts.

    ``values[layer]`` (N, d) float32; ``text`` (N,) index of each token's text, ``position`` (N,)
    its index in that text's encoding (special tokens included), ``token_id`` (N,).
    """

    values: dict[int, np.ndarray]
    text: np.ndarray
    position: np.ndarray
    token_id: np.ndarray


def token_activations(
    model: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int],
    hook: Hook = "resid_post",
    *,
    batch_size: int = 32,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_total_tokens: int | None = None,
    engine: Engine = "auto",
    progress: Progress | None = None,
) -> TokenActivations:
    """One forward pass per batch of texts for all ``layers``; texts are tokenised and run a batch
    at a time, in order, until ``max_total_tokens`` real tokens are collected (all texts when None).
    ``progress`` hears each batch (a job's report: a cancelled job stops at the next batch)."""
    with model.forward_lock:
        return _token_activations(model, texts, layers, hook, batch_size, max_tokens, max_total_tokens, engine, progress or silent)


def _token_activations(
    model: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int],
    hook: Hook,
    batch_size: int,
    max_tokens: int,
    max_total_tokens: int | None,
    engine: Engine,
    progress: Progress,
) -> TokenActivations:
    layers = sorted(set(int(layer) for layer in layers))
    bad = [layer for layer in layers if not 0 <= layer < model.n_layers]
    if not layers or bad:
        raise InvalidParameter(f"layer(s) {bad or layers} out of range: {model.name} has layers 0..{model.n_layers - 1}")
    if not texts:
        raise DataError("no texts to run the model on")
    names = [hook_name(hook, layer) for layer in layers]
    runner = None
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    text_index, positions, token_ids = [], [], []
    collected = 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            if max_total_tokens is not None and collected >= max_total_tokens:
                break
            progress(start / len(texts), f"forward pass: texts {start + 1}-{min(start + batch_size, len(texts))} of {len(texts)}")
            encoded = encode(model.tokenizer, texts[start : start + batch_size], max_tokens=max_tokens)
            if runner is None:
                runner = _choose_runner(model, names, encoded, engine)
            real = encoded["special_tokens_mask"] == 0
            local, pos = np.nonzero(real)
            ids = torch.as_tensor(encoded["input_ids"], device=model.device)
            attention = torch.as_tensor(encoded["attention_mask"], device=model.device)
            values = runner(ids, attention, (torch.as_tensor(local, device=model.device), torch.as_tensor(pos, device=model.device)))
            for name in names:
                chunks[name].append(values[name].float().cpu().numpy())
            text_index.append(start + local)
            positions.append(pos)
            token_ids.append(encoded["input_ids"][local, pos])
            collected += len(local)
    keep = slice(None) if max_total_tokens is None else slice(0, min(max_total_tokens, collected))
    return TokenActivations(
        values={layer: np.concatenate(chunks[name])[keep] for layer, name in zip(layers, names)},
        text=np.concatenate(text_index)[keep],
        position=np.concatenate(positions)[keep],
        token_id=np.concatenate(token_ids)[keep],
    )
