"""The interaction-graph job kinds' computations: validated params in, a result out."""

from __future__ import annotations

import time

from featgeom_core.interaction.ablation import (
    ablation_context,
    bisect_layer,
    kept_schedule,
    node_ablation_curve,
)
from featgeom_core.interaction.digits import train_digits
from featgeom_core.interaction.graph import build_graph
from featgeom_core.interaction.modadd import train_modular_addition
from featgeom_core.interaction.params import (
    SCRATCH,
    TRAINED,
    DigitsTrainParams,
    InteractionGraphParams,
    LanguageTarget,
    ModAddTarget,
    ModAddTrainParams,
)
from featgeom_core.interaction.result import (
    BasisResult,
    InteractionGraphResult,
    TrainedModel,
)
from featgeom_core.interaction.shipped import ships
from featgeom_core.interaction.targets import load_target
from featgeom_core.jobs.protocol import JobOutput
from featgeom_core.progress import Progress, steps_progress, sub_progress


def run_train_modadd(params: ModAddTrainParams, report: Progress) -> JobOutput[TrainedModel]:
    """Train the modular-addition transformer with the peer's recipe."""
    model, history = train_modular_addition(params, report)
    return JobOutput(TrainedModel("modadd", {k: v.numpy() for k, v in model.tl_state_dict().items()}, history, params.normalised()))


def run_train_digits(params: DigitsTrainParams, report: Progress) -> JobOutput[TrainedModel]:
    """Train the digits MLP."""
    model, _, history = train_digits(params, report)
    return JobOutput(TrainedModel("digits", {k: v.detach().numpy() for k, v in model.state_dict().items()}, history, params.normalised()))


def _description(params: InteractionGraphParams) -> str:
    target = params.target
    if isinstance(target, LanguageTarget):
        return f"block {target.layer}, {target.windows} x {target.tokens} tokens"
    if target.checkpoint == SCRATCH:
        return f"trained here from scratch (seed {target.train.seed})"
    if target.checkpoint != TRAINED:
        return target.checkpoint
    if isinstance(target, ModAddTarget) and ships(target.train):
        return f"the lab's shipped checkpoint (seed {target.train.seed})"
    return f"trained here (seed {target.train.seed})"


def run_graph(params: InteractionGraphParams, report: Progress) -> JobOutput[InteractionGraphResult]:
    """Load (or train) the model, then per basis: the graph, node-ablation curves, the bisect."""
    from featgeom_core.interaction.fourier import fourier_labels

    timings: dict[str, float] = {}
    start = time.perf_counter()
    target = load_target(params.target, sub_progress(report, 0.0, 0.1, "model: "))
    timings["model"] = time.perf_counter() - start
    inputs = target.basis_inputs if params.max_samples is None else target.basis_inputs[: params.max_samples]
    results: dict[str, BasisResult] = {}
    context = None
    work = sub_progress(report, 0.1, 1.0)
    for b, kind in enumerate(params.bases):
        part = steps_progress(work, b, len(params.bases), f"{kind}: ")
        start = time.perf_counter()
        graph = build_graph(target.model, inputs, params.graph.model_copy(update={"basis": kind}), sub_progress(part, 0.0, 0.6))
        timings[f"{kind} build"] = time.perf_counter() - start
        start = time.perf_counter()
        if context is None:
            context = ablation_context(
                target.model, graph, target.test_inputs, target.test_labels, params.ablation.metric, params.ablation.dtype
            )
        layers = graph.node_layers[:-1]
        node_curves: dict[str, dict[int, float]] = {}
        if params.ablation.nodes:
            nodes = sub_progress(part, 0.6, 0.75)
            for k, layer in enumerate(layers):
                schedule = kept_schedule(graph.bases[k].orig_dim, params.ablation.exp_base, params.ablation.every_below)
                node_curves[layer] = node_ablation_curve(
                    context, graph, k, schedule, steps_progress(nodes, k, len(layers), f"node ablation of {layer}: ")
                )
        bisect: dict[str, dict[str, object]] = {}
        if params.ablation.edges:
            edges = sub_progress(part, 0.75, 1.0)
            for k, layer in enumerate(layers):
                trace = bisect_layer(context, graph, k, params.ablation.tolerance, steps_progress(edges, k, len(layers), "bisect "))
                bisect[layer] = {
                    "required": trace.required,
                    "total": trace.total,
                    "smallest_kept_edge": trace.smallest_kept_edge,
                    "tried": [[kept, value] for kept, value in trace.tried.items()],
                }
        timings[f"{kind} ablation"] = time.perf_counter() - start
        fourier = fourier_labels(target.model, graph, target.modulus) if target.modulus is not None else []
        results[kind] = BasisResult(graph, node_curves, bisect, fourier)
    report(1.0, "done")
    assert context is not None
    output = InteractionGraphResult(
        params.target.model if isinstance(params.target, LanguageTarget) else params.target.kind,
        _description(params),
        context.metric,
        context.base,
        results,
        timings,
    )
    return JobOutput(output, extra=(target.trained,) if target.trained else ())
