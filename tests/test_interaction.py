"""LIB against ground truth: planted structure (a linear MLP's diagonal edges, a block-diagonal
MLP's modules), invariances (rotating the final layer, folding biases), the closed-form Jacobians
against autograd, integration rules on a cubic, stochastic sources, the peer's published numbers,
and clear errors for bad input."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from featgeom_core.errors import DataError, FeatgeomError, InvalidParameter
from featgeom_core.interaction import (
    GraphParams,
    ModAddConfig,
    ModAddTransformer,
    Section,
    SequentialModel,
    bisect_edge_ablation,
    build_graph,
    kept_schedule,
    leiden_modules,
    load_modular_addition,
    modular_addition_data,
)
from featgeom_core.interaction.ablation import (
    MaskedSection,
)
from featgeom_core.interaction.basis import closed_form_jacobian_gram, jacobian_gram
from featgeom_core.interaction.cores import LastQueryAttention, Positionwise
from featgeom_core.interaction.edges import interaction_edges
from featgeom_core.interaction.graph import sequential_view
from featgeom_core.interaction.jacobians import (
    RowPlan,
    integration_points,
    pullbacks,
    section_maps,
)
from featgeom_core.interaction.sequential import affine, with_constant


def mlp_view(weights: list[torch.Tensor], biases: list[torch.Tensor], relu: bool = True) -> SequentialModel:
    """x -> relu(x W0 + b0) -> ... as a sequential view (the last layer linear, no constant)."""
    sections = []
    for k, (W, b) in enumerate(zip(weights, biases)):
        last = k == len(weights) - 1
        if last:
            sections.append(Section(linear_in=affine(W, b, keep_constant=False)))
        else:
            sections.append(Section(Positionwise(0, W.shape[1] if relu else 0), affine(W, b)))
    names = [f"l{k}" for k in range(len(weights) + 1)]

    def embed(x: torch.Tensor) -> torch.Tensor:
        return with_constant(x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype))

    return SequentialModel("mlp", names, embed, sections, [True] * len(weights) + [False])


def test_linear_mlp_in_the_neuron_basis_has_diagonal_edges() -> None:
    torch.manual_seed(0)
    d = 6
    scales = torch.linspace(1.0, 3.0, d, dtype=torch.float64)
    view = mlp_view([torch.diag(scales), torch.diag(scales.flip(0))], [torch.zeros(d, dtype=torch.float64)] * 2, relu=False)
    x = torch.randn(400, 1, d, dtype=torch.float64)
    graph = build_graph(view, x, {"basis": "neuron", "center": False})
    E = graph.edges[0][:d, :d]  # without the constant direction (last, uncentred)
    off = E - torch.diag(torch.diagonal(E))
    assert float(off.abs().max()) < 1e-12 * float(E.max())
    assert torch.all(torch.diagonal(E) > 0)


def block_mlp(seed: int, blocks: int = 3, width: int = 4) -> tuple[SequentialModel, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    d = blocks * width

    def block_diag() -> torch.Tensor:
        return torch.block_diag(
            *[
                torch.randn(width, width, generator=generator, dtype=torch.float64) + 2 * torch.eye(width, dtype=torch.float64)
                for _ in range(blocks)
            ]
        )

    view = mlp_view([block_diag(), block_diag(), block_diag()], [torch.zeros(d, dtype=torch.float64)] * 3)
    return view, torch.randn(2000, 1, d, generator=generator, dtype=torch.float64)


def test_block_diagonal_mlp_modules_are_its_blocks() -> None:
    view, x = block_mlp(seed=1)
    graph = build_graph(view, x, {"basis": "neuron", "center": False})
    modules, quality = leiden_modules(graph, resolution=1.0, seed=0, eps=[1e-12] * len(graph.edges))
    blocks = np.repeat(np.arange(3), 4)
    for membership in modules:
        real = membership[:12]
        # each block is one module and different blocks are different modules
        assert all(len(set(real[blocks == b])) == 1 for b in range(3)), real
        assert len({real[blocks == b][0] for b in range(3)}) == 3
    assert quality > 0.5
    with pytest.raises(InvalidParameter, match="resolution"):
        leiden_modules(graph, resolution=0.0)


def test_rotating_the_final_layer_leaves_earlier_edges_unchanged() -> None:
    view, x = block_mlp(seed=2)
    graph = build_graph(view, x, {"basis": "lib"})
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    last = view.sections[-1]
    rotated = SequentialModel(
        "rotated", view.node_layers, view.embed, [*view.sections[:-1], Section(linear_in=last.linear_in @ Q)], view.constant
    )
    graph_rotated = build_graph(rotated, x, {"basis": "lib"})
    for k in range(len(graph.bases) - 1):  # every basis but the final layer's: equal up to each direction's sign
        same = torch.minimum(
            (graph.bases[k].C - graph_rotated.bases[k].C).abs().amax(0), (graph.bases[k].C + graph_rotated.bases[k].C).abs().amax(0)
        )
        assert float(same.max()) < 1e-9 * float(graph.bases[k].C.abs().max())
    for k in range(len(graph.edges) - 1):  # exact pre-activation zeros (dead blocks) must not take a slope from rounding
        assert torch.allclose(graph.edges[k], graph_rotated.edges[k], rtol=1e-7, atol=1e-12 * float(graph.edges[k].max())), k
    assert not torch.allclose(graph.edges[-1], graph_rotated.edges[-1])


def tiny_modadd(seed: int = 0) -> ModAddTransformer:
    model = ModAddTransformer(ModAddConfig(modulus=11, d_model=16, n_heads=2, d_head=4, d_mlp=24), seed)
    with torch.no_grad():  # non-zero biases, so folding them is tested
        for name, parameter in model.params.items():
            if "__b_" in name:
                parameter.normal_(0, 0.3)
    return model


def test_folded_sequential_view_equals_the_model() -> None:
    model = tiny_modadd()
    data = modular_addition_data(11, 0.5, 0)
    view = model.sequential(torch.float64)
    folded = view.activations(data.test_tokens)[-1][:, -1]
    with torch.no_grad():
        direct = model(data.test_tokens).to(torch.float64)
    assert float((folded - direct).abs().max()) < 1e-5
    assert view.restricted(["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "logits"]).activations(data.test_tokens)[-1].shape == (
        len(data.test_tokens),
        1,
        12,
    )


@pytest.mark.parametrize("rule,intervals", [("gradient", 0), ("gauss-legendre", 3)])
def test_closed_form_jacobians_equal_autograd(rule: str, intervals: int) -> None:
    model = tiny_modadd(1)
    view = model.sequential(torch.float64)
    x = view.activations(modular_addition_data(11, 0.5, 0).train_tokens[:40])
    points = integration_points(rule, intervals)
    generator = torch.Generator().manual_seed(0)
    for k, section in enumerate(view.sections[:2]):
        assert isinstance(section.core, (LastQueryAttention, Positionwise))
        C_out = torch.randn(x[k + 1].shape[-1], 7, generator=generator, dtype=torch.float64)
        C_in = torch.randn(x[k].shape[-1], 9, generator=generator, dtype=torch.float64)
        generic = Section(lambda pre, core=section.core: core(pre) * 1.0, section.linear_in, section.linear_out)  # no closed form
        T = section(x[k][:1]).shape[1]
        M_autograd = jacobian_gram(lambda z, s=generic: s(z) @ C_out, [x[k]], RowPlan(T, 7), points, 0, 40)
        M_closed = closed_form_jacobian_gram(section_maps(section, None, C_out), [x[k]], points, 40)
        assert torch.allclose(M_closed, M_autograd, rtol=1e-10, atol=1e-12 * float(M_autograd.abs().max()))
        E_autograd = interaction_edges(generic, [x[k]], C_in, torch.linalg.pinv(C_in), C_out, points, None, 0, 40)
        E_closed = interaction_edges(section, [x[k]], C_in, torch.linalg.pinv(C_in), C_out, points, None, 0, 40)
        assert torch.allclose(E_closed, E_autograd, rtol=1e-10, atol=1e-12 * float(E_autograd.abs().max()))


def test_integration_rules_converge_on_a_cubic() -> None:
    # f(x) = x^3 elementwise: integral_0^1 f'(a x) da = x^2 exactly
    x = torch.linspace(0.5, 2.0, 5, dtype=torch.float64).reshape(1, 1, 5)
    plan = RowPlan(1, 5)
    exact = x.pow(2).flatten()

    def integrated(rule: str, n: int) -> torch.Tensor:
        ((_, _, grads),) = list(pullbacks(lambda z: z.pow(3), x, plan, integration_points(rule, n)))
        return torch.diagonal(grads[:, 0, 0, :])

    assert torch.allclose(integrated("gauss-legendre", 1), exact, rtol=1e-12)  # two nodes integrate a quadratic exactly
    errors = [float((integrated("trapezoidal", n) - exact).abs().max()) for n in (2, 8, 32)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-2
    assert float((integrated("gradient", 0) - 3 * exact).abs().max()) < 1e-12  # the plain gradient is 3 x^2


def test_one_stochastic_source_is_exact_with_one_output_position() -> None:
    def reduce_positions(z: torch.Tensor) -> torch.Tensor:  # (B, S, J) -> (B, 1, J): one output position
        return torch.tanh(z).sum(1, keepdim=True)

    x = torch.randn(30, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = torch.cat([g for _, _, g in pullbacks(reduce_positions, x, RowPlan(1, 3), [(1.0, 1.0)])])
    with_source = torch.cat(
        [g for _, _, g in pullbacks(reduce_positions, x, RowPlan(1, 3, sources=1), [(1.0, 1.0)], torch.Generator().manual_seed(0))]
    )
    assert torch.allclose(exact.abs(), with_source.abs(), rtol=1e-12)  # a +-1 sign on the one position, squared away
    # with several output positions, many sources approach the exact squared sum
    x_seq = torch.randn(60, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exact_sq = sum(g.pow(2).sum() for _, _, g in pullbacks(torch.tanh, x_seq, RowPlan(5, 3), [(1.0, 1.0)]))
    sources_sq = (
        sum(
            g.pow(2).sum()
            for _, _, g in pullbacks(torch.tanh, x_seq, RowPlan(5, 3, sources=64), [(1.0, 1.0)], torch.Generator().manual_seed(1))
        )
        / 64
    )
    assert abs(float(sources_sq / exact_sq) - 1) < 1e-12  # tanh is position-wise: the cross terms vanish exactly


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    model = tiny_modadd()
    tokens = modular_addition_data(11, 0.5, 0).train_tokens
    with pytest.raises(InvalidParameter, match="unknown node layer"):
        build_graph(model, tokens, {"node_layers": "blocks.0.hook_resid_pre,nowhere,logits"})
    with pytest.raises(InvalidParameter, match="order"):
        build_graph(model, tokens, {"node_layers": "blocks.0.hook_resid_post,blocks.0.hook_resid_pre,logits"})
    with pytest.raises(FeatgeomError, match="truncation"):
        build_graph(model, tokens, {"truncation": 1e6})
    with pytest.raises(FeatgeomError, match="too few"):
        build_graph(model, tokens[:1])
    graph = build_graph(model, tokens)
    with pytest.raises(InvalidParameter, match="tolerance"):
        bisect_edge_ablation(model, graph, tokens, None, tolerance=0.0)
    with pytest.raises(InvalidParameter):
        GraphParams.parse({"integration": "gradient", "n_intervals": 3})
    # checkpoints: another architecture, and a pickle of an arbitrary object
    wrong = tmp_path / "other.pt"
    torch.save({"embed.W_E": torch.zeros(12, 16), "layer.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(DataError, match="modular-addition"):
        load_modular_addition(wrong)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": Path("x")}, pickled)  # an object that weights_only refuses to unpickle
    with pytest.raises(DataError, match="weights_only"):
        load_modular_addition(pickled)


def test_lib_is_sparser_than_pca_on_the_digits_mlp() -> None:
    """The paper's claim on its image MLP, on the bundled digits: LIB needs fewer edges than PCA."""
    from featgeom_core.interaction import DigitsTrainParams, train_digits

    model, data, history = train_digits(DigitsTrainParams(epochs=300))
    assert history["test_accuracy"][-1] > 0.93
    required = {}
    for basis in ("lib", "pca"):
        graph = build_graph(model, data.train_inputs, {"basis": basis})
        required[basis] = sum(t.required for t in bisect_edge_ablation(model, graph, data.test_inputs, data.test_labels, 0.01).values())
    assert required["lib"] < required["pca"], required


def test_kept_schedule_matches_the_peer_counts() -> None:
    schedule = kept_schedule(129)
    assert schedule[0] == 129 and schedule[-1] == 0 and all(k in schedule for k in range(11))
    assert all(a > b for a, b in zip(schedule, schedule[1:]))
    assert math.isclose(len(schedule), len(set(schedule)))


def test_projected_masked_attention_equals_the_plain_masked_core() -> None:
    model = tiny_modadd()
    data = modular_addition_data(11, 0.5, 0)
    graph = build_graph(
        model, data.train_tokens, {"basis": "lib", "node_layers": ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "logits"]}
    )
    view = sequential_view(model, torch.float64, graph.node_layers)
    f_in_hat = view.activations(data.test_tokens)[0] @ graph.bases[0].C
    projected = MaskedSection(view.sections[0], f_in_hat, graph.bases[0].C_pinv, graph.bases[1].C)
    plain_core = lambda pre, core=view.sections[0].core: core(pre)  # noqa: E731  (no masked_columns: the generic path)
    plain = MaskedSection(replace(view.sections[0], core=plain_core), f_in_hat, graph.bases[0].C_pinv, graph.bases[1].C)
    generator = torch.Generator().manual_seed(0)
    for kept_fraction in (0.1, 0.5, 0.9, 1.0):
        mask = torch.rand(graph.edges[0].shape, generator=generator) < kept_fraction
        assert torch.allclose(projected(mask), plain(mask), atol=1e-10, rtol=0)


def test_gib_folds_trailing_linear_sections_into_the_closed_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIB pulls back from the final layer. Where every later section is linear (the MLP layer before
    the unembedding; the layer before the logits) it takes section k's closed form with them folded in:
    the same bases as autograd through the rest of the model."""
    from featgeom_core.interaction import graph as graph_module

    model = tiny_modadd()
    tokens = modular_addition_data(11, 0.5, 0).train_tokens
    folded = build_graph(model, tokens, {"basis": "gib", "dtype": "float64"})
    last = len(folded.node_layers) - 1
    section, target = graph_module._pulled_through(sequential_view(model, torch.float64, folded.node_layers), last - 2, "gib")
    assert section is not None and target == last  # the MLP layer: its section and the unembedding, folded
    monkeypatch.setattr(graph_module, "_pulled_through", lambda view, k, basis: (None, last))
    by_autograd = build_graph(model, tokens, {"basis": "gib", "dtype": "float64"})
    for ours, theirs in zip(folded.bases, by_autograd.bases):
        assert ours.values.shape == theirs.values.shape
        assert torch.allclose(ours.values, theirs.values, rtol=1e-9, atol=1e-12), ours.node_layer
    for ours, theirs in zip(folded.edges, by_autograd.edges):
        assert torch.allclose(ours, theirs, rtol=1e-7, atol=1e-12)
