"""A kind's directions as vectors in one activation space, so directions made by different methods
can be compared by cosine and read on any text.

Every vector here is a *reading* vector of the space: a token's activation ``x`` (d,) gives
``x @ vector + offset`` (a probe's logit; a LIB direction's coordinate up to its centring). A
dictionary atom's column is a writing vector; its activation on a token is its sparse code (see
:mod:`featgeom_core.features.text`), but its direction compares the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from featgeom_core.errors import InvalidParameter
from featgeom_core.features.ref import FeatureKind, FeatureRef

HOOKS = ("resid_post", "mlp_post")


@dataclass(frozen=True)
class Space:
    """One activation space of a model: ``hook`` (``resid_post`` or ``mlp_post``) at ``layer``.
    The residual stream *before* block 0 (the token embeddings of a model without learned positions)
    is ``resid_post`` at layer -1."""

    model: str
    hook: str
    layer: int

    def label(self) -> str:
        if self.hook == "resid_post" and self.layer < 0:
            return f"{self.model} · embeddings (the residual stream before block 0)"
        return f"{self.model} · {self.hook} · layer {self.layer}"


def space_of_node_layer(model: str, node_layer: str) -> Space | None:
    """The activation space a LIB node layer's hook name is (resid_pre of block l is resid_post of
    l - 1); None for node layers with no counterpart (resid_mid, attention out, a toy's layers)."""
    match = re.fullmatch(r"blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|mlp\.hook_post)", node_layer)
    if match is None:
        return None
    layer, name = int(match.group(1)), match.group(2)
    if name == "hook_resid_pre":
        return Space(model, "resid_post", layer - 1)
    return Space(model, "resid_post" if name == "hook_resid_post" else "mlp_post", layer)


@dataclass(frozen=True)
class DirectionSet:
    """k directions of one kind in one space.

    ``vectors`` (k, d) float64 and ``offsets`` (k,): the reading of each (see the module
    docstring); ``labels`` (k,) short names; ``source``: where they come from, in words;
    ``template``: the FeatureRef of direction 0 (direction i is ``template`` with index i);
    ``facts``: per direction, lines a page shows beside it (a probe's held-out quality), or empty;
    ``warning``: what to say beside every direction of the set (probes that do not beat chance).
    """

    kind: FeatureKind
    space: Space
    vectors: np.ndarray
    offsets: np.ndarray
    labels: tuple[str, ...]
    source: str
    template: FeatureRef
    facts: tuple[dict[str, str], ...] = ()
    warning: str = ""

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.offsets) != len(self.vectors) or len(self.labels) != len(self.vectors):
            raise InvalidParameter(f"{self.source}: vectors (k, d), offsets (k,) and labels (k,) must agree")

    def __len__(self) -> int:
        return len(self.vectors)

    def ref(self, index: int) -> FeatureRef:
        """The FeatureRef of direction ``index``."""
        return FeatureRef(**{**self.template.__dict__, "index": int(index)})

    def check(self, index: int) -> None:
        """InvalidParameter unless ``index`` names one of the directions."""
        if not 0 <= index < len(self):
            raise InvalidParameter(f"{self.source} has directions 0..{len(self) - 1}; there is no {index}")

    def read(self, activations: np.ndarray, index: int) -> np.ndarray:
        """Direction ``index`` read on activations (n, d): (n,) ``x @ vector + offset``."""
        self.check(index)
        if activations.shape[-1] != self.vectors.shape[1]:
            raise InvalidParameter(f"activations of width {activations.shape[-1]} against directions of width {self.vectors.shape[1]}")
        return np.asarray(activations, dtype=np.float64) @ self.vectors[index] + float(self.offsets[index])


def probe_set(
    template: FeatureRef,
    space: Space,
    feature_names: tuple[str, ...],
    directions: np.ndarray,
    bias: np.ndarray,
    quality: Any = None,
    warning: str = "",
) -> DirectionSet:
    """A feature set's probe directions at one layer: (F, d) weights and (F,) biases (the logit);
    ``quality``: the layer's ``LayerQuality`` (each probe's held-out figures beside the baselines)."""
    facts: tuple[dict[str, str], ...] = ()
    if quality is not None:
        facts = tuple(
            {
                "held-out balanced accuracy": f"{quality.feature_balanced_accuracy[i]:.3f} (one-vs-rest; chance 0.5)",
                "the layer's probes": quality.verdict(),
            }
            for i in range(len(feature_names))
        )
    return DirectionSet(
        kind="probe",
        space=space,
        vectors=np.asarray(directions, dtype=np.float64),
        offsets=np.asarray(bias, dtype=np.float64),
        labels=tuple(feature_names),
        source=f"{template.features} probes",
        template=template,
        facts=facts,
        warning=warning,
    )


def atom_set(template: FeatureRef, space: Space, dictionary: np.ndarray, usage: np.ndarray) -> DirectionSet:
    """A dictionary's atoms: ``dictionary`` (d, m) unit columns; ``usage`` (m,) share of tokens using each."""
    m = dictionary.shape[1]
    return DirectionSet(
        kind="atom",
        space=space,
        vectors=np.asarray(dictionary, dtype=np.float64).T,
        offsets=np.zeros(m),
        labels=tuple(f"atom {a} ({usage[a]:.1%} of tokens)" for a in range(m)),
        source=f"dictionary of sparsity job {template.job[:8]}",
        template=template,
    )


def lib_vectors(C: np.ndarray, node_layer: str, d_model: int, d_mlp: int) -> np.ndarray | None:
    """The activation-space part of a language block's LIB basis ``C`` (orig, n): (n, d), or None
    where the node layer's layout has no plain hook counterpart. A residual node layer before
    the block carries [the norm's statistic, the stream, the constant 1] (pre-norm) or [stream, 1];
    the MLP node layer [hidden units, the stream carried, 1]; the block's output the stream alone."""
    orig = C.shape[0]
    if node_layer.endswith("hook_resid_pre"):
        rows = slice(1, d_model + 1) if orig == d_model + 2 else slice(0, d_model) if orig == d_model + 1 else None
    elif node_layer.endswith("hook_resid_post"):
        rows = slice(0, d_model) if orig == d_model else None
    elif node_layer.endswith("mlp.hook_post"):
        rows = slice(0, d_mlp) if orig == d_mlp + d_model + 1 else None
    else:
        rows = None
    return None if rows is None else np.asarray(C[rows], dtype=np.float64).T


def lib_set(template: FeatureRef, space: Space, vectors: np.ndarray, values: np.ndarray, node_layer: str) -> DirectionSet:
    """A LIB node layer's directions (n, d) with their importances Lambda (n,)."""
    return DirectionSet(
        kind="lib",
        space=space,
        vectors=vectors,
        offsets=np.zeros(len(vectors)),
        labels=tuple(f"direction {j} (Λ {values[j]:.3g})" for j in range(len(vectors))),
        source=f"LIB of job {template.job[:8]} at {node_layer}",
        template=template,
    )
