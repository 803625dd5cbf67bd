"""LIB on a language model's block: the folded sequential view equals the model (BERT's post-LN,
GPT-2's pre-LN, GPT-NeoX's parallel-residual and sequential blocks and Llama's RMSNorm/SwiGLU
blocks with rotary grouped-query attention), the norm's statistic (LayerNorm's variance, RMSNorm's
mean of squares) stays a fixed direction of every basis, stochastic sources converge to the exact
edges, the unablated block scores 0 and keeping every edge reproduces it, and a block the model
lacks is a clear error."""

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
    LlamaConfig,
    LlamaModel,
    MistralConfig,
    MistralModel,
)
from transformers.models.llama.modeling_llama import LlamaRMSNorm

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
    RMSNormParams,
    block_sections,
    block_weights,
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


LLAMA = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48)


def tiny_llama(seed: int = 0, biases: bool = False, rope: dict | None = None, attn: str = "sdpa") -> LlamaModel:
    """SmolLM2's architecture in miniature: 4 query heads sharing 2 key/value heads, a small
    rope_theta (so short windows rotate far), RMSNorm gains and (optional) biases drawn at random
    (transformers initialises them to 1 and 0, which would hide a gain or bias applied wrongly)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        **LLAMA,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_parameters=rope or {"rope_type": "default", "rope_theta": 100.0},
        initializer_range=0.2,
        attention_bias=biases,
        mlp_bias=biases,
        attn_implementation=attn,
    )
    model = LlamaModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                parameter.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                parameter.normal_(0.0, 0.2)
    return model


def tiny_llama_yarn_biases(seed: int = 0) -> LlamaModel:
    """With biases and YaRN rotary scaling (cos and sin scaled by its attention factor, ~1.07 here)."""
    rope = {"rope_type": "yarn", "rope_theta": 100.0, "factor": 2.0, "original_max_position_embeddings": 32}
    return tiny_llama(seed, biases=True, rope=rope)


@pytest.fixture
def float64_rmsnorm(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers' RMSNorm computes in float32 whatever the model's dtype (an upcast meant for
    half precision; in float64 it rounds to ~1e-7), as does the eager softmax: the float64
    reference is the model with that cast left out of RMSNorm (the same formula, eps and order of
    operations) and sdpa attention (float64 throughout)."""

    def forward(self: LlamaRMSNorm, hidden_states: torch.Tensor) -> torch.Tensor:
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    monkeypatch.setattr(LlamaRMSNorm, "forward", forward)


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


@pytest.mark.parametrize("make,mlp_bound", [(tiny_bert, 41), (tiny_gpt2, 41), (tiny_neox, 41), (tiny_llama, 48 + 32 + 1)])
def test_lib_graph_keeps_the_variance_fixed_and_edges_are_finite(make, mlp_bound) -> None:
    block = LanguageBlock(make(), 1)
    graph = build_graph(block, tokens(40, 8), {"basis": "lib"})
    view = block.sequential(torch.float64)
    for k, basis in enumerate(graph.bases[:-1]):
        fixed = view.leading_fixed[k]
        if fixed:  # direction 1 (after the constant) is the variance coordinate alone, up to the centring's constant part
            direction = basis.C[:, 1]
            assert direction[1:-1].abs().max() < 1e-9 and abs(float(direction[0])) > 0
    assert all(bool(torch.isfinite(E).all()) and float(E.min()) >= 0 for E in graph.edges)
    assert graph.dims()[2] <= mlp_bound


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


@pytest.mark.parametrize("make,windows", [(tiny_bert, 40), (tiny_llama, 20)])
def test_unablated_block_scores_zero_and_all_edges_reproduce_it(make, windows) -> None:
    block = LanguageBlock(make(), 1)
    inputs = tokens(windows, 8)
    graph = build_graph(block, inputs, {"basis": "lib"})
    context = ablation_context(block, graph, inputs, None, dtype="float64")
    assert context.metric == "mse" and context.base == 0.0
    for k in range(3):
        b_in, b_out = graph.bases[k], graph.bases[k + 1]
        masked = MaskedSection(context.view.sections[k], context.acts[k] @ b_in.C, b_in.C_pinv, b_out.C)
        everything = masked(edge_mask(graph.edges[k], graph.edges[k].numel(), b_in.constant_first)) @ b_out.C_pinv
        assert context.final_score(k + 1, everything) < 1e-20
        trace = bisect_layer(context, graph, k, tolerance=0.05)
        assert 0 < trace.required <= trace.total
        assert all(value >= 0 for value in trace.tried.values())


@pytest.mark.parametrize("make", [tiny_llama, tiny_llama_yarn_biases])
def test_folded_llama_block_equals_the_model_in_float64(make, float64_rmsnorm) -> None:
    """RMSNorm, rotary grouped-query attention and SwiGLU folded into LIB's sections reproduce each
    HF decoder layer's own output (its forward hook) and the next layer's input (hidden_states)."""
    model = make().double()
    ids = tokens(3, 9)
    reference = block_outputs(model, ids, (0, 1))
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    for layer in (0, 1):
        acts = LanguageBlock(model, layer).sequential(torch.float64).activations(ids)
        error = float((acts[-1] - reference[layer]).abs().max())
        assert error < 1e-12, (layer, error, float(reference[layer].abs().max()))
        if layer == 0:
            assert float((acts[-1] - hidden[1]).abs().max()) < 1e-12  # hidden_states[-1] has the final norm applied


def test_llama_view_matches_the_model_as_transformers_runs_it() -> None:
    """Without the float64 RMSNorm: the eager float64 model (float32 RMSNorm and softmax inside)
    and the float32 model (the view used as is, no copy) agree with the view to float32 rounding."""
    model = tiny_llama(attn="eager")
    ids = tokens(2, 9)
    for dtype in (torch.float64, torch.float32):
        model = model.to(dtype)
        reference = block_outputs(model, ids, (1,))[1]
        acts = LanguageBlock(model, 1).sequential(dtype).activations(ids)
        assert acts[-1].dtype == dtype
        assert float((acts[-1] - reference).abs().max()) < 1e-5 * float(reference.abs().max())


def test_llama_rotary_attention_is_applied() -> None:
    """Swapping two earlier tokens leaves a position-blind causal block's last output unchanged
    (keys and values are a set) but changes the rotary block's: the rotation is what sees order."""
    model = tiny_llama().double()
    ids = tokens(1, 6)
    swapped = ids.clone()
    swapped[0, [0, 1]] = ids[0, [1, 0]]
    assert not torch.equal(ids, swapped)
    view = LanguageBlock(model, 0).sequential(torch.float64)
    rotary = [view.activations(window)[-1][0, -1] for window in (ids, swapped)]
    assert not torch.allclose(rotary[0], rotary[1], atol=1e-6)
    weights = block_weights(model, 0)
    weights.rotary = None
    blind = block_sections(weights)
    position_blind = [blind[2](blind[1](blind[0](view.embed(window))))[0, -1] for window in (ids, swapped)]
    assert torch.allclose(position_blind[0], position_blind[1], atol=1e-12)
    shifted = torch.cat([ids[:, :2], ids], dim=1)  # the same window two positions on
    assert not torch.allclose(view.activations(shifted)[-1][0, -1], rotary[0], atol=1e-6)


def test_llama_block_node_layers_and_shapes(float64_rmsnorm) -> None:
    """[ms(x), x, 1] -> [ms(y), y, 1] -> [silu(gate(N2 y)) * up(N2 y), y, 1] -> y + mlp, as the
    module docstring says; the weights have 2 key/value heads for 4 query heads."""
    model = tiny_llama().double()
    d, d_mlp = LLAMA["hidden_size"], LLAMA["intermediate_size"]
    weights = block_weights(model, 1)
    assert weights.shape == "pre_ln" and weights.n_heads == 4 and weights.n_kv_heads == 2
    assert weights.W_q.shape == (d, 32) and weights.W_k.shape == weights.W_v.shape == (d, 16)
    assert weights.W_gate is not None and weights.W_gate.shape == weights.W_in.shape == (d, d_mlp) and weights.W_out.shape == (d_mlp, d)
    assert isinstance(weights.ln1, RMSNormParams) and weights.ln1.eps == 1e-5 and weights.rotary is not None
    assert weights.rotary.inv_freq.shape == (4,)  # head_dim 8: every coordinate rotated
    view = LanguageBlock(model, 1).sequential(torch.float64)
    assert view.node_layers == node_layer_names(1) and view.leading_fixed == [1, 1, 0, 0] and view.constant == [True, True, True, False]
    ids = tokens(2, 5)
    acts = view.activations(ids)
    assert [a.shape[-1] for a in acts] == [1 + d + 1, 1 + d + 1, d_mlp + d + 1, d]
    for a in acts[:2]:  # the mean of squares, not a variance: no centring
        assert torch.allclose(a[..., 0], a[..., 1 : 1 + d].pow(2).mean(-1), atol=1e-12)
    assert all(bool((a[..., -1] == 1).all()) for a in acts[:-1])
    block = model.layers[1]
    y = acts[1][..., 1 : 1 + d]
    with torch.no_grad():
        normed = block.post_attention_layernorm(y)
        swiglu = block.mlp.act_fn(block.mlp.gate_proj(normed)) * block.mlp.up_proj(normed)
    assert torch.allclose(acts[2][..., :d_mlp], swiglu, atol=1e-12)
    assert torch.equal(acts[2][..., d_mlp : d_mlp + d], y)
    with pytest.raises(InvalidParameter, match="blocks 0 to 1"):
        LanguageBlock(model, 2)


def test_llama_relatives_the_view_would_misread_are_refused() -> None:
    """Frequencies that change with the window's length, and Mistral (Llama's modules, a sliding window)."""
    dynamic = tiny_llama(rope={"rope_type": "dynamic", "rope_theta": 100.0, "factor": 2.0})
    with pytest.raises(InvalidParameter, match="fixed frequencies"):
        LanguageBlock(dynamic, 0)
    mistral = MistralModel(MistralConfig(**LLAMA, sliding_window=4))
    with pytest.raises(InvalidParameter, match="none of them"):
        LanguageBlock(mistral, 0)


def test_the_language_target_takes_smollm2() -> None:
    from featgeom_core.interaction.params import InteractionGraphParams, LanguageTarget

    params = InteractionGraphParams.parse({"target": {"kind": "language", "model": "smollm2", "layer": 15}})
    assert isinstance(params.target, LanguageTarget) and params.target.model == "smollm2" and params.target.layer == 15


def test_smollm2_block_reads_as_a_llama_block(smollm2) -> None:
    """The offline causal LM: block 15 of 30, 9 query heads sharing 3 key/value heads, and its
    float32 view reproduces the model's block output on two short windows."""
    model = smollm2.plain_model
    weights = block_weights(model, 15)
    assert weights.n_heads == 9 and weights.n_kv_heads == 3 and weights.W_q.shape == (576, 576) and weights.W_k.shape == (576, 192)
    assert weights.W_gate is not None and weights.W_gate.shape == (576, 1536) and weights.activation == "silu"
    assert isinstance(weights.ln2, RMSNormParams) and weights.ln2.eps == model.config.rms_norm_eps
    assert weights.rotary is not None and weights.rotary.inv_freq.shape == (32,)
    theta = model.config.rope_parameters["rope_theta"]
    assert torch.allclose(weights.rotary.inv_freq, 1.0 / theta ** (torch.arange(0, 64, 2, dtype=torch.float32) / 64))
    with pytest.raises(InvalidParameter, match="blocks 0 to 29"):
        block_weights(model, 30)
    ids = token_windows(smollm2.tokenizer, ["The quick brown fox jumps over the lazy dog, and then it rests in the sun."], 2, 8)
    reference = block_outputs(model, ids, (15,))[15]
    acts = LanguageBlock(model, 15, "smollm2").sequential(torch.float32).activations(ids)
    assert [a.shape[-1] for a in acts] == [578, 578, 1536 + 576 + 1, 576]
    assert float((acts[-1] - reference).abs().max()) < 1e-4 * float(reference.abs().max())


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


def test_a_built_in_models_graph_sees_more_tokens_than_its_widest_node_layer_by_default() -> None:
    """SmolLM2's MLP node layer (1,536 hidden units, the 576-wide residual and the constant: 2,113)
    is wider than 64 windows of 32 tokens; by default a graph gets enough windows, unless they are given."""
    from featgeom_core.interaction.params import MIN_TOKENS_PER_DIRECTION, InteractionGraphParams, LanguageTarget

    for model, width in (("smollm2", 1536 + 576 + 1), ("minilm", 1536 + 384 + 1)):
        target = LanguageTarget(model=model)
        assert target.windows * target.tokens >= MIN_TOKENS_PER_DIRECTION * width, model
        assert LanguageTarget(model=model, tokens=16).windows * 16 >= MIN_TOKENS_PER_DIRECTION * width, model
    assert LanguageTarget(model="smollm2", windows=10).windows == 10
    assert LanguageTarget(model="EleutherAI/pythia-70m-deduped").windows == 64  # sizes unknown before loading
    params = InteractionGraphParams(target={"kind": "language", "model": "smollm2"})
    assert InteractionGraphParams.model_validate(params.normalised()) == params  # the chosen count is explicit in the job id
