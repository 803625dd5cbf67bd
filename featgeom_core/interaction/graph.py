"""Build an interaction graph: means and Gram matrices, a basis per node layer (from the output
backwards), and the edges between consecutive node layers."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch

from featgeom_core.errors import DataError, InvalidParameter
from featgeom_core.interaction.basis import (
    closed_form_jacobian_gram,
    jacobian_gram,
    lib_basis,
    neuron_basis,
    pca_basis,
    whitening,
)
from featgeom_core.interaction.edges import interaction_edges
from featgeom_core.interaction.jacobians import RowPlan, section_maps
from featgeom_core.interaction.params import GraphParams
from featgeom_core.interaction.result import InteractionGraph, LayerBasis
from featgeom_core.interaction.sequential import Section, SequentialModel
from featgeom_core.progress import Progress, silent, sub_progress

DTYPES = {"float64": torch.float64, "float32": torch.float32}


class HasSequentialView(Protocol):
    """A model LIB can read: it shows itself as a sequence of node layers at a dtype."""

    def sequential(self, dtype: torch.dtype = torch.float64) -> SequentialModel: ...


def sequential_view(
    model: HasSequentialView | SequentialModel, dtype: torch.dtype, node_layers: list[str] | None = None
) -> SequentialModel:
    """The model's sequential view at ``dtype``, restricted to ``node_layers`` (default: the
    view's ``default_node_layers``, else all)."""
    view = model if isinstance(model, SequentialModel) else model.sequential(dtype)
    chosen = list(node_layers or view.default_node_layers or view.node_layers)
    return view.restricted(chosen) if list(chosen) != view.node_layers else view


def _batches(inputs: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [inputs[i : i + size] for i in range(0, len(inputs), size)]


def layer_activations(view: SequentialModel, inputs: torch.Tensor, batch_size: int) -> list[list[torch.Tensor]]:
    """acts[k][b]: node layer k's activations (B, S, d) for input batch b, without gradients."""
    per_layer: list[list[torch.Tensor]] = [[] for _ in view.node_layers]
    with torch.no_grad():
        for batch in _batches(inputs, batch_size):
            for k, acts in enumerate(view.activations(batch)):
                per_layer[k].append(acts.detach())
    return per_layer


def means_and_grams(acts: list[torch.Tensor], center: bool, constant: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(mean over samples and positions or None, the Gram matrix of the centred activations),
    float64; the constant coordinate is never shifted."""
    rows = sum(a.shape[0] * a.shape[1] for a in acts)
    mean: torch.Tensor | None = None
    if center and constant:
        mean = torch.stack([a.to(torch.float64).sum(dim=(0, 1)) for a in acts]).sum(dim=0) / rows
        mean[-1] = 1.0
    d = acts[0].shape[-1]
    gram = torch.zeros(d, d, dtype=torch.float64)
    for a in acts:
        flat = a.reshape(-1, d).to(torch.float64)
        if mean is not None:
            flat = flat - torch.cat([mean[:-1], torch.zeros(1, dtype=torch.float64)])
        gram += flat.T @ flat
    return mean, gram / rows


def build_graph(
    model: HasSequentialView | SequentialModel,
    inputs: torch.Tensor,
    params: GraphParams | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> InteractionGraph:
    """The interaction graph of ``model`` on ``inputs`` (N, ...) (the paper: the training split).

    Returns bases C (d_k, n_k) per node layer and edges E (n_{k+1}, n_k) per pair, float64.
    Raises InvalidParameter for unknown or out-of-order node layers, a truncation that leaves no
    direction, or too few samples for the Gram matrices.
    """
    params = GraphParams.parse(params)
    inputs = check_inputs(inputs)
    report = progress or silent
    dtype = DTYPES[params.dtype]
    view = sequential_view(model, dtype, params.node_layers)
    if len(inputs) < 2:
        raise DataError(f"{len(inputs)} samples are too few for the Gram matrices; give at least 2 (the paper: the whole training split)")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    report(0.0, "activations, means and Gram matrices")
    acts = layer_activations(view, inputs, params.batch_size)
    n = len(inputs)
    stats = [means_and_grams(layer, params.center, view.constant[k]) for k, layer in enumerate(acts)]
    positions = acts[0][0].shape[1]
    if n * positions <= 1:
        raise DataError("too few samples for the Gram matrices")
    timings["grams"] = time.perf_counter() - start

    start = time.perf_counter()
    last = len(view.node_layers) - 1
    bases: list[LayerBasis | None] = [None] * len(view.node_layers)
    final_name, (final_mean, final_gram) = view.node_layers[last], stats[last]
    if params.rotate_final and params.basis != "neuron":
        bases[last] = pca_basis(final_name, final_gram, final_mean, params.truncation, view.leading_fixed[last], params.whiten_pca)
    else:
        bases[last] = neuron_basis(final_name, final_gram.shape[0], final_gram.diagonal())
    points = params.points()
    for k in range(last - 1, -1, -1):
        layer_start = time.perf_counter()
        name_k, (mean_k, gram_k) = view.node_layers[k], stats[k]
        report(0.1 + 0.45 * (last - 1 - k) / max(last, 1), f"basis of {name_k}")
        if params.basis == "neuron":
            bases[k] = neuron_basis(name_k, gram_k.shape[0], gram_k.diagonal())
            continue
        if params.basis == "pca":
            bases[k] = pca_basis(name_k, gram_k, mean_k, params.truncation, view.leading_fixed[k], params.whiten_pca)
            continue
        w = whitening(gram_k, mean_k, params.truncation, view.leading_fixed[k], name_k)
        on_progress = sub_progress(
            report, 0.1 + 0.45 * (last - 1 - k) / max(last, 1), 0.1 + 0.45 * (last - k) / max(last, 1), f"{name_k}: "
        )
        M_dash = _pullback_gram(view, k, bases, acts[k], params, n, dtype, on_progress)
        bases[k] = lib_basis(name_k, w, M_dash, params.truncation, kind=params.basis)
        timings[f"basis {name_k}"] = time.perf_counter() - layer_start
    timings["bases"] = time.perf_counter() - start
    built = [basis for basis in bases if basis is not None]
    assert len(built) == len(bases), "every node layer has a basis"

    start = time.perf_counter()
    edges = []
    for k in range(last):
        layer_start = time.perf_counter()
        b_in, b_out = built[k], built[k + 1]
        report(0.55 + 0.45 * k / last, f"edges {view.node_layers[k]} -> {view.node_layers[k + 1]}")
        edges.append(
            interaction_edges(
                view.sections[k],
                acts[k],
                b_in.C.to(dtype),
                b_in.C_pinv.to(dtype),
                b_out.C.to(dtype),
                points,
                params.edge_sources or None,
                params.seed + 1000 + k,
                n,
                lambda f, m, k=k: report(0.55 + 0.45 * (k + f) / last, m),
            )
        )
        timings[f"edges {view.node_layers[k]}"] = time.perf_counter() - layer_start
    timings["edges"] = time.perf_counter() - start
    report(1.0, "graph built")
    return InteractionGraph(name or view.name, list(view.node_layers), built, edges, params.normalised(), n, timings)


def _pullback_gram(
    view: SequentialModel,
    k: int,
    bases: list[LayerBasis | None],
    acts_k: list[torch.Tensor],
    params: GraphParams,
    n: int,
    dtype: torch.dtype,
    progress: Progress,
) -> torch.Tensor:
    """M' of node layer k (d_k, d_k), float64: pulled back from node layer k + 1's basis (lib) or
    from the final layer's (gib); in closed form where the section allows it."""
    points = params.points()
    fn: Callable[[torch.Tensor], torch.Tensor]
    section, target = _pulled_through(view, k, params.basis)
    if section is not None:
        C_target = _built(bases[target]).C.to(dtype)
        maps = section_maps(section, None, C_target)
        if maps.closed_form:
            return closed_form_jacobian_gram(maps, acts_k, points, n, progress)
        linear_in = section.linear_in
        if linear_in is not None and linear_in.shape[1] < linear_in.shape[0]:
            # pull back to the (narrower) core input and sandwich: M' = L M'_pre L^T, since g = g_pre L^T
            G = maps.G
            assert G is not None  # the target basis is given, so the output map exists
            core = section.core
            fn = lambda pre: (pre if core is None else core(pre)) @ G  # noqa: E731
            with torch.no_grad():
                pre_batches = [x @ linear_in.to(dtype) for x in acts_k]
            M_pre = _generic_gram(fn, pre_batches, params, k, n, progress)
            L = linear_in.to(torch.float64)
            return L @ M_pre @ L.T
        fn = lambda x: section(x) @ C_target  # noqa: E731
    else:
        C_target = _built(bases[-1]).C.to(dtype)
        fn = lambda x: view.run_from(k, x) @ C_target  # noqa: E731
    return _generic_gram(fn, acts_k, params, k, n, progress)


def _pulled_through(view: SequentialModel, k: int, basis: str) -> tuple[Section | None, int]:
    """The one section node layer k's pullback goes through, and the node layer it starts from. LIB:
    section k, from layer k + 1. GIB: from the final layer, through sections k, k + 1, ...; when every
    later section is linear they fold into section k's output map (the same function, so the closed
    form of section k's core applies), else None: autograd through the rest of the model."""
    if basis == "lib":
        return view.sections[k], k + 1
    later = view.sections[k + 1 :]
    if any(s.core is not None for s in later):
        return None, len(view.node_layers) - 1
    section = view.sections[k]
    for s in later:
        section = section.then(s)
    return section, len(view.node_layers) - 1


def _built(basis: LayerBasis | None) -> LayerBasis:
    """A basis built already (the bases are built from the last node layer down)."""
    assert basis is not None, "a later node layer's basis is built before this one's"
    return basis


def _generic_gram(
    fn: Callable[[torch.Tensor], torch.Tensor], batches: list[torch.Tensor], params: GraphParams, k: int, n: int, progress: Progress
) -> torch.Tensor:
    """M' by batched pullbacks of ``fn``'s output rows (stochastic sources over several output positions)."""
    with torch.no_grad():
        probe = fn(batches[0][:1])
    out_positions, rows = probe.shape[1], probe.shape[2]
    sources = params.basis_sources if (params.basis_sources and out_positions > 1) else None
    return jacobian_gram(fn, batches, RowPlan(out_positions, rows, sources), params.points(), params.seed + k, n, progress)


def check_inputs(inputs: Any) -> torch.Tensor:
    """Inputs as a tensor with a batch dimension, or a clear error."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1:
        raise InvalidParameter("inputs must be a tensor with a batch dimension (N, ...)")
    return inputs
