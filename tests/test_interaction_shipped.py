"""The modular-addition checkpoint the package ships: its record is true of its weights (hash,
recipe, accuracies recomputed here), "trained" at the default recipe uses it without training,
"scratch" and any other recipe train, and a changed file is refused."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from featgeom_core.errors import DataError
from featgeom_core.interaction import shipped
from featgeom_core.interaction.modadd import load_modular_addition, modular_addition_data
from featgeom_core.interaction.params import SCRATCH, ModAddTarget, ModAddTrainParams
from featgeom_core.interaction.targets import load_target
from featgeom_core.store import Store


def accuracy(model, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(tokens).argmax(-1) == labels).float().mean())


def test_the_shipped_checkpoint_is_what_its_record_says() -> None:
    record = shipped.shipped_record()
    assert record is not None, "featgeom_core/interaction/shipped_weights/modadd_seed0.json is missing"
    weights = shipped.SHIPPED_DIR / f"{shipped.MODADD_NAME}.safetensors"
    assert shipped.sha256_of(weights) == record["sha256"]
    assert record["params"] == ModAddTrainParams().normalised()  # the default recipe, so "trained" finds it
    trained = shipped.shipped_modadd(ModAddTrainParams())
    assert trained is not None
    model = load_modular_addition(trained.torch_state())
    data = modular_addition_data(113, 0.3, 0)
    test, train = accuracy(model, data.test_tokens, data.test_labels), accuracy(model, data.train_tokens, data.train_labels)
    assert test == pytest.approx(record["test_accuracy"], abs=1e-6) and test >= 0.999  # grokked: the peer's model reaches 0.99955
    assert train == pytest.approx(record["train_accuracy"], abs=1e-6) and train == 1.0
    assert record["history"]["test_accuracy"][-1] >= 0.999 and record["epochs_trained"] == record["history"]["epoch"][-1] + 1


def test_trained_at_the_default_recipe_uses_the_shipped_model_and_other_recipes_do_not(tmp_path) -> None:
    messages: list[str] = []
    start = time.perf_counter()
    loaded = load_target(ModAddTarget(), lambda f, m, *_: messages.append(m), Store(tmp_path))
    assert time.perf_counter() - start < 30 and loaded.trained is None
    assert any("shipped" in m for m in messages)
    assert shipped.shipped_modadd(ModAddTrainParams(seed=1)) is None
    assert shipped.shipped_modadd(ModAddTrainParams(stop_at_accuracy=1.0)) is None
    messages.clear()
    tiny = {"epochs": 3, "model": {"d_model": 16, "d_mlp": 32, "n_heads": 2, "d_head": 8}}
    scratch = load_target(ModAddTarget(checkpoint=SCRATCH, train=tiny), lambda f, m, *_: messages.append(m), Store(tmp_path))
    assert scratch.trained is not None and not any("shipped" in m for m in messages)


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch) -> None:
    for name in (f"{shipped.MODADD_NAME}.safetensors", f"{shipped.MODADD_NAME}.json"):
        shutil.copy(shipped.SHIPPED_DIR / name, tmp_path / name)
    weights = tmp_path / f"{shipped.MODADD_NAME}.safetensors"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0xFF
    weights.write_bytes(bytes(content))
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    with pytest.raises(DataError, match="SHA-256"):
        shipped.shipped_modadd(ModAddTrainParams())
    record = json.loads((tmp_path / f"{shipped.MODADD_NAME}.json").read_text())
    assert record["sha256"] != shipped.sha256_of(weights)
