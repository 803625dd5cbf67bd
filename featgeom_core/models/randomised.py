"""Randomised-weights controls: a built-in model's architecture and tokenizer with every weight drawn
afresh by the architecture's own initialiser (seeded), written once as an ordinary checkpoint
directory in the cache. The thesis leaves this control as future work: whatever geometry the
probes find on such a model comes from the architecture, the token statistics and the probes, not
from training."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from pathlib import Path

from featgeom_core.config import cache_dir
from featgeom_core.errors import ModelUnavailable
from featgeom_core.models.ids import RANDOMISED_SUFFIX

SEED = 0
DONE_FILE = "randomised.json"


def base_of(model_id: str) -> str:
    """The model a randomised id re-initialises (``minilm-random`` -> ``minilm``)."""
    return model_id.removesuffix(RANDOMISED_SUFFIX)


def fingerprint(base_fingerprint: str) -> str:
    """The randomised checkpoint's fingerprint: its base's, the seed and the initialiser's library."""
    import transformers

    return f"{base_fingerprint}+random{SEED}:transformers-{transformers.__version__}"


def randomised_dir(base_dir: Path, base_fingerprint: str, root: Path | None = None) -> Path:
    """The checkpoint directory of ``base_dir``'s architecture with seed-:data:`SEED` initial weights,
    under ``root`` (default: the cache); written on first use (beside its place, then renamed; two
    processes asking at once write it once)."""
    name = f"random{SEED}-{hashlib.sha256(fingerprint(base_fingerprint).encode()).hexdigest()[:16]}"
    models = (root or cache_dir()) / "models"
    target = models / name
    if (target / DONE_FILE).is_file():
        return target
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / DONE_FILE).is_file():  # another process may have written it while we waited
            _write(base_dir, target, base_fingerprint)
    return target


def _write(base_dir: Path, target: Path, base_fingerprint: str) -> None:
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # an earlier write that did not finish
    try:
        config = AutoConfig.from_pretrained(str(base_dir))
        name = (config.architectures or [""])[0]
        architecture = getattr(transformers, name, None) if name else None
        if architecture is None:
            raise ModelUnavailable(f"cannot randomise {base_dir.name}: its config names no architecture transformers has ({name!r})")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = architecture(config)  # the architecture's own initialiser (post_init)
        model.save_pretrained(str(staging))
        AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(staging))
        (staging / DONE_FILE).write_text(json.dumps({"base": str(base_dir), "fingerprint": fingerprint(base_fingerprint), "seed": SEED}))
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelUnavailable(f"could not write the randomised checkpoint into {target.parent}: {exc} (is the disk full?)") from exc
