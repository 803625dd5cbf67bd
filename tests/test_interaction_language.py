"""LIB on a language model's block: the folded sequential view equals the model (BERT's post-LN,
GPT-2's pre-LN and GPT-NeoX's parallel-residual and sequential blocks with rotary attention), the
LayerNorm variance stays a fixed direction of every basis, stochastic sources converge to the
exact edges, the unablated block scores 0 and keeping every edge reproduces it, and a block the
model lacks is a clear error."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2Model,
    GPTNeoXConfig,
    GPTNeoXModel,
)

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction.ablation import (
    MaskedSection,
    ablation_context,
    bisect_layer,
    edge_mask,
)
from featgeom_core.interaction.graph import build_graph
from featgeom_core.interaction.language import (
    LanguageBlock,
    node_layer_names,
    token_windows,
)

VOCAB = 40


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20, max_position_embeddings=32
    )
    return BertModel(config).eval()


def tiny_gpt2(seed: int = 0) -> GPT2Model:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_embd=12, n_layer=3, n_head=3, n_positions=32, bos_token_id=0, eos_token_id=0)
    return GPT2Model(config).eval()


def tiny_neox(seed: int = 0, parallel: bool = True) -> GPTNeoXModel:
    """Pythia's architecture in miniature: half of each head's coordinates rotary."""
    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=32,
        rotary_pct=0.5,
        use_parallel_residual=parallel,
    )
    return GPTNeoXModel(config).eval()


def tiny_neox_sequential(seed: int = 0) -> GPTNeoXModel:
    return tiny_neox(seed, parallel=False)


def block_outputs(model: torch.nn.Module, ids: torch.Tensor, layers: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Each block's own output (hidden_states[-1] of GPT-NeoX has the final LayerNorm applied)."""
    blocks = getattr(model, "layers", None) or getattr(model, "h", None) or model.encoder.layer
    outputs: dict[int, torch.Tensor] = {}
    hooks = [
        blocks[layer].register_forward_hook(
            lambda _m, _i, out, layer=layer: outputs.__setitem__(layer, out[0] if isinstance(out, tuple) else out)
        )
        for layer in layers
    ]
    with torch.no_grad():
        model(input_ids=ids)
    for hook in hooks:
        hook.remove()
    return outputs


def tokens(n: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make,parallel", [(tiny_bert, False), (tiny_gpt2, False), (tiny_neox, True), (tiny_neox_sequential, False)])
def test_folded_block_equals_the_model(make, parallel) -> None:
    model = make().double()
    ids = tokens(3, 7)
    reference = block_outputs(model, ids, (0, 1))
    for layer in (0, 1):
        view = LanguageBlock(model, layer).sequential(torch.float64)
        assert view.node_layers == node_layer_names(layer, parallel)
        acts = view.activations(ids)
        assert torch.allclose(acts[-1], reference[layer], atol=1e-12, rtol=0)
        d = acts[-1].shape[-1]  # the variance of x, the residual the middle layer carries first
        assert torch.allclose(acts[1][..., 0], acts[1][..., 1 : 1 + d].var(-1, unbiased=False), atol=1e-12)  # LN variance first
        assert all(bool((a[..., -1] == 1).all()) for a in acts[:-1])  # the constant last


def test_rotary_attention_is_not_position_blind() -> None:
    """Shifting a window changes a rotary block's output at the same token (the rotation is applied)."""
    view = LanguageBlock(tiny_neox().double(), 0).sequential(torch.float64)
    ids = tokens(1, 6)
    shifted = torch.cat([ids[:, :1], ids], dim=1)
    first, second = view.activations(ids)[-1][0, 0], view.activations(shifted)[-1][0, 0]
    assert torch.allclose(first, second, atol=1e-12)  # causal: position 0 sees only itself
    assert not torch.allclose(view.activations(ids)[-1][0, 2], view.activations(shifted)[-1][0, 3], atol=1e-6)


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt2, tiny_neox])
def test_lib_graph_keeps_the_variance_fixed_and_edges_are_finite(make) -> None:
    block = LanguageBlock(make(), 1)
    graph = build_graph(block, tokens(40, 8), {"basis": "lib"})
    view = block.sequential(torch.float64)
    for k, basis in enumerate(graph.bases[:-1]):
        fixed = view.leading_fixed[k]
        if fixed:  # direction 1 (after the constant) is the variance coordinate alone, up to the centring's constant part
            direction = basis.C[:, 1]
            assert direction[1:-1].abs().max() < 1e-9 and abs(float(direction[0])) > 0
    assert all(bool(torch.isfinite(E).all()) and float(E.min()) >= 0 for E in graph.edges)
    assert graph.dims()[2] <= 24 + 16 + 1


def test_stochastic_sources_are_unbiased_and_converge_to_the_exact_edges() -> None:
    block = LanguageBlock(tiny_bert(), 0)
    inputs = tokens(30, 6)
    exact = build_graph(block, inputs, {"basis": "pca", "edge_sources": 0})
    one = build_graph(block, inputs, {"basis": "pca", "edge_sources": 1, "seed": 3})
    many = build_graph(block, inputs, {"basis": "pca", "edge_sources": 400, "seed": 3})
    for k in range(3):
        error_one = float((one.edges[k] - exact.edges[k]).norm() / exact.edges[k].norm())
        error_many = float((many.edges[k] - exact.edges[k]).norm() / exact.edges[k].norm())
        assert error_many < 0.1 and error_many < error_one / 4, (k, error_one, error_many)


def test_unablated_block_scores_zero_and_all_edges_reproduce_it() -> None:
    block = LanguageBlock(tiny_bert(), 1)
    inputs = tokens(60, 8)
    graph = build_graph(block, inputs[:40], {"basis": "lib"})
    context = ablation_context(block, graph, inputs[:40], None, dtype="float64")
    assert context.metric == "mse" and context.base == 0.0
    for k in range(3):
        b_in, b_out = graph.bases[k], graph.bases[k + 1]
        masked = MaskedSection(context.view.sections[k], context.acts[k] @ b_in.C, b_in.C_pinv, b_out.C)
        everything = masked(edge_mask(graph.edges[k], graph.edges[k].numel(), b_in.constant_first)) @ b_out.C_pinv
        assert context.final_score(k + 1, everything) < 1e-20
        trace = bisect_layer(context, graph, k, tolerance=0.05)
        assert 0 < trace.required <= trace.total
        assert all(value >= 0 for value in trace.tried.values())


def test_a_block_the_model_lacks_and_an_unknown_architecture_are_clear_errors() -> None:
    with pytest.raises(InvalidParameter, match="blocks 0 to 1"):
        LanguageBlock(tiny_bert(), 2)
    with pytest.raises(InvalidParameter, match="none of them"):
        LanguageBlock(torch.nn.Linear(2, 2), 0)


def test_token_windows_are_consecutive_and_refuse_too_little_text() -> None:
    class Characters:
        def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
            return {"input_ids": [ord(c) for c in text]}

    windows = token_windows(Characters(), ["abcdef", "ghij"], 2, 4)
    assert windows.tolist() == [[97, 98, 99, 100], [101, 102, 103, 104]]
    with pytest.raises(Exception, match="fewer than"):
        token_windows(Characters(), ["abc"], 2, 4)


def test_a_gpt_neox_checkpoint_directory_runs_as_a_lib_graph_job(tmp_path) -> None:
    """The registry path end to end for Pythia's architecture: a saved checkpoint directory (MiniLM's
    tokenizer beside it, since no hub is reachable) -> block 1 with a parallel residual -> graphs in
    two bases, each with a bisect on every layer pair."""
    from transformers import AutoTokenizer, GPTNeoXForCausalLM

    from featgeom_core.interaction.params import InteractionGraphParams
    from featgeom_core.interaction.run import run_graph
    from featgeom_core.models.registry import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        rotary_pct=0.25,
    )
    GPTNeoXForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    params = InteractionGraphParams(model=str(tmp_path), language={"layer": 1, "windows": 8, "tokens": 12}, ablation={"tolerance": 0.05})
    result = run_graph(params, lambda fraction, message, *_: None).result
    assert result.metric == "mse" and result.base_score == 0.0
    for kind in ("lib", "pca"):
        graph = result.results[kind].graph
        assert graph.node_layers == node_layer_names(1, parallel=True)
        assert all(bool(torch.isfinite(E).all()) for E in graph.edges)
        traces = result.results[kind].bisect
        assert len(traces) == 3 and all(0 < trace["required"] <= trace["total"] for trace in traces.values())
