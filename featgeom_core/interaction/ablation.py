"""Ablations that say how much of a graph the model needs (section 4.1, Appendix B).

- Node ablation: rotate one node layer into its basis, keep the n most important directions, rotate
  back, run the rest of the model, score the output. Counts are of the layer's original width, as
  the peer counts them: keeping n of d removes d - n directions, less those the truncation already
  removed.
- Edge ablation: keep the k largest edges of one layer pair (ties at the k-th value are kept; edges
  out of the constant direction are always kept and never counted), recompute the pair's output
  direction by direction from its kept inputs, run the rest, score. A bisect over the number of
  edges removed (from 0 to d_in x d_out, the original widths) finds the fewest kept edges whose
  score stays within the tolerance of the unablated model's.

Every ablated forward pass reuses the unablated activations up to the ablated layer. The masked
recomputation is linear up to the section's core, so each output direction's pre-core input is
the full one minus the removed inputs' part (or the kept inputs' part, whichever is fewer), and a
direction whose kept inputs did not change since an earlier bisect step is not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from featgeom_core.errors import InvalidParameter
from featgeom_core.interaction.graph import sequential_view
from featgeom_core.interaction.result import InteractionGraph
from featgeom_core.interaction.sequential import Section, SequentialModel
from featgeom_core.progress import Progress, silent

MetricName = Literal["accuracy", "ce_loss", "mse"]
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def kept_schedule(width: int, exp_base: float = 1.05, every_below: int = 10) -> list[int]:
    """Kept-direction counts from ``width`` down to 0: every count up to ``every_below``, above it
    gaps that grow geometrically (the removed count shrinks by exp_base^x at step x)."""
    if width <= every_below + 1:
        return list(range(width, -1, -1))
    removed = [width - kept for kept in range(0, every_below + 1)]  # width, ..., width - every_below
    current, x = removed[-1], 0
    while True:
        current = int(current - exp_base**x)
        x += 1
        if current <= 0:
            removed.append(0)
            break
        removed.append(current)
    return sorted({width - r for r in removed}, reverse=True)


def score(outputs: torch.Tensor, labels: torch.Tensor | None, metric: MetricName, reference: torch.Tensor | None = None) -> float:
    """The metric of final-layer outputs (N, T, d): accuracy or cross-entropy of the last
    position's prediction against ``labels``; or mse, the mean squared difference from the
    unablated ``reference`` divided by the reference's variance (0 = unablated)."""
    if metric == "mse":
        if reference is None:
            raise InvalidParameter("the mse metric needs the unablated outputs")
        diff = (outputs.to(torch.float64) - reference.to(torch.float64)).pow(2).mean()
        return float(diff / reference.to(torch.float64).var().clamp_min(1e-30))
    if labels is None:
        raise InvalidParameter(f"the {metric} metric needs labels")
    logits = outputs[:, -1, :]
    if metric == "accuracy":
        return float((logits.argmax(-1) == labels).to(torch.float64).mean())
    if metric == "ce_loss":
        return float(torch.nn.functional.cross_entropy(logits.to(torch.float64), labels))
    raise InvalidParameter(f"metric {metric!r}: use accuracy, ce_loss or mse")


def within(value: float, base: float, tolerance: float, metric: MetricName) -> bool:
    """Whether an ablated score is within the tolerance (accuracy may fall, losses may rise)."""
    return value >= base - tolerance if metric == "accuracy" else value <= base + tolerance


@dataclass
class AblationContext:
    """The unablated forward pass on the ablation inputs, at the ablation dtype."""

    view: SequentialModel
    acts: list[torch.Tensor]
    labels: torch.Tensor | None
    metric: MetricName
    base: float

    def final_score(self, k: int, acts_k: torch.Tensor) -> float:
        """Score after replacing node layer k's activations."""
        with torch.no_grad():
            return score(self.view.run_from(k, acts_k), self.labels, self.metric, self.acts[-1])


def ablation_context(
    model, graph: InteractionGraph, inputs: torch.Tensor, labels: torch.Tensor | None, metric: str = "auto", dtype: str = "float32"
) -> AblationContext:
    """Run the model once at ``dtype`` on the ablation inputs (the paper: the test split)."""
    view = sequential_view(model, DTYPES[dtype], graph.node_layers)
    chosen: MetricName = view.metric if metric == "auto" else metric  # type: ignore[assignment]
    with torch.no_grad():
        acts = view.activations(inputs)
    context = AblationContext(view, acts, labels, chosen, 0.0)
    context.base = score(acts[-1], labels, chosen, acts[-1])
    return context


def node_ablation_curve(
    context: AblationContext, graph: InteractionGraph, k: int, kept_counts: list[int], progress: Progress | None = None
) -> dict[int, float]:
    """{kept directions: score} for node layer k (kept counts of the layer's original width)."""
    report = progress or silent
    basis = graph.bases[k]
    dtype = context.acts[k].dtype
    C, C_pinv = basis.C.to(dtype), basis.C_pinv.to(dtype)
    truncated = basis.orig_dim - basis.dim
    results: dict[int, float] = {}
    for i, kept in enumerate(kept_counts):
        report(i / max(len(kept_counts), 1), f"{kept} kept")
        removed = max(basis.orig_dim - kept - truncated, 0)
        if removed == 0:
            results[kept] = context.base
            continue
        keep = basis.dim - removed
        rotation = C[:, :keep] @ C_pinv[:keep] if keep > 0 else torch.zeros(basis.orig_dim, basis.orig_dim, dtype=dtype)
        results[kept] = context.final_score(k, context.acts[k] @ rotation)
    return results


def edge_mask(E: torch.Tensor, kept: int, constant_in: bool) -> torch.Tensor:
    """(n_out, n_in) bool: the ``kept`` largest edges (all ties at the kept-th value too); the
    constant input direction's column is always kept and not counted."""
    values = E[:, 1:] if constant_in else E
    if kept <= 0:
        chosen = torch.zeros_like(values, dtype=torch.bool)
    elif kept >= values.numel():
        chosen = torch.ones_like(values, dtype=torch.bool)
    else:
        threshold = torch.topk(values.flatten(), kept).values[-1]
        chosen = values >= threshold
    if constant_in:
        chosen = torch.cat([torch.ones(E.shape[0], 1, dtype=torch.bool), chosen], dim=1)
    return chosen


class MaskedSection:
    """A section's output in the output basis when each output direction sees only its kept
    input directions: ``out_hat[..., i] = core((f_in_hat * mask[i]) @ C_in_pinv @ linear_in) @ (linear_out @ C_out)[:, i]``.

    Output directions with the same mask share one core evaluation (or, for a core with
    ``masked_columns``, each direction is evaluated in its own projected form); each direction's
    result is remembered by its mask, so a bisect recomputes only directions whose mask changed.
    """

    def __init__(self, section: Section, f_in_hat: torch.Tensor, C_in_pinv: torch.Tensor, C_out: torch.Tensor) -> None:
        self.section = section
        self.f_in_hat = f_in_hat
        self.A = C_in_pinv if section.linear_in is None else C_in_pinv @ section.linear_in.to(C_in_pinv.dtype)
        self.G = C_out if section.linear_out is None else section.linear_out.to(C_out.dtype) @ C_out
        with torch.no_grad():
            self.full_pre = f_in_hat @ self.A
        self._cache: dict[tuple[int, bytes], torch.Tensor] = {}
        self.evaluations = 0

    def _pre(self, kept: torch.Tensor) -> torch.Tensor:
        n_kept = int(kept.sum())
        if n_kept == kept.numel():
            return self.full_pre
        if n_kept <= kept.numel() - n_kept:
            index = torch.nonzero(kept).flatten()
            return self.f_in_hat[..., index] @ self.A[index]
        index = torch.nonzero(~kept).flatten()
        return self.full_pre - self.f_in_hat[..., index] @ self.A[index]

    @torch.no_grad()
    def __call__(self, mask: torch.Tensor) -> torch.Tensor:
        """(N, T, n_out) for a (n_out, n_in) mask."""
        rows = [(i, mask[i].numpy().tobytes()) for i in range(mask.shape[0])]
        missing = [i for i, key in enumerate(rows) if key not in self._cache]
        core: Any = self.section.core  # a core may evaluate masked columns in closed form (cores.py)
        if missing and hasattr(core, "masked_columns"):
            out = core.masked_columns(self.f_in_hat, self.A, self.G[:, missing], mask[missing])
            self.evaluations += 1
            for column, i in enumerate(missing):
                self._cache[rows[i]] = out[..., column]
        elif missing:
            patterns, groups = torch.unique(mask[missing], dim=0, return_inverse=True)
            missing_t = torch.tensor(missing)
            for g in range(len(patterns)):
                members = missing_t[groups == g]
                pre = self._pre(patterns[g])
                mid = pre if self.section.core is None else self.section.core(pre)
                out = mid @ self.G[:, members]
                self.evaluations += 1
                for column, i in enumerate(members.tolist()):
                    self._cache[rows[i]] = out[..., column]
        return torch.stack([self._cache[key] for key in rows], dim=-1)


@dataclass
class BisectTrace:
    """One layer pair's bisect: kept-edge counts tried, in order, with their scores."""

    node_layer: str
    total: int
    required: int
    tried: dict[int, float] = field(default_factory=dict)
    smallest_kept_edge: float = 0.0


def bisect_layer(
    context: AblationContext, graph: InteractionGraph, k: int, tolerance: float, progress: Progress | None = None
) -> BisectTrace:
    """The bisect for the pair (node layer k, k + 1)."""
    b_in, b_out = graph.bases[k], graph.bases[k + 1]
    dtype = context.acts[k].dtype
    f_in_hat = context.acts[k] @ b_in.C.to(dtype)
    section = context.view.sections[k]
    masked = MaskedSection(section, f_in_hat, b_in.C_pinv.to(dtype), b_out.C.to(dtype))
    C_out_pinv = b_out.C_pinv.to(dtype)
    E = graph.edges[k]
    total = b_in.orig_dim * b_out.orig_dim
    lower, upper = 0, total
    trace = BisectTrace(graph.node_layers[k], total, total)
    steps = max(1, total.bit_length())
    while upper - lower > 1:
        removed = (lower + upper) // 2
        kept = total - removed
        out = masked(edge_mask(E, kept, b_in.constant_first)) @ C_out_pinv
        value = context.final_score(k + 1, out)
        trace.tried[kept] = value
        if within(value, context.base, tolerance, context.metric):
            lower = removed
        else:
            upper = removed
        if progress:
            progress(min(1.0, len(trace.tried) / steps), f"{graph.node_layers[k]}: {kept} edges kept -> {context.metric} {value:.4f}")
    trace.required = total - lower
    mask = edge_mask(E, trace.required, b_in.constant_first)
    values = E[:, 1:][mask[:, 1:]] if b_in.constant_first else E[mask]
    trace.smallest_kept_edge = float(values.min()) if values.numel() else 0.0
    return trace


def bisect_edge_ablation(
    model,
    graph: InteractionGraph,
    inputs: torch.Tensor,
    labels: torch.Tensor | None,
    tolerance: float = 0.001,
    metric: str = "auto",
    dtype: str = "float32",
    progress: Progress | None = None,
) -> dict[str, BisectTrace]:
    """{input node layer: its bisect} for every consecutive pair of the graph's node layers."""
    if tolerance <= 0:
        raise InvalidParameter(f"tolerance = {tolerance}: must be > 0")
    context = ablation_context(model, graph, inputs, labels, metric, dtype)
    pairs = len(graph.node_layers) - 1
    return {
        graph.node_layers[k]: bisect_layer(
            context, graph, k, tolerance, (lambda f, m, k=k: progress((k + f) / pairs, m)) if progress else None
        )
        for k in range(pairs)
    }
