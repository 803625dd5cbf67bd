"""What names one feature: its kind, the model and layer it lives at, its index, and the result it
comes from. The feature page's URL is this reference (``?kind=&model=&layer=&index=&job=``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, cast

from featgeom_core.errors import InvalidParameter

FeatureKind = Literal["probe", "atom", "lib", "hessian"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("probe", "atom", "lib", "hessian")
KIND_TITLES: dict[str, str] = {
    "probe": "probe direction",
    "atom": "dictionary atom",
    "lib": "LIB direction",
    "hessian": "Hessian feature",
}
MAX_FIELD = 200


@dataclass(frozen=True)
class FeatureRef:
    """One feature.

    ``kind``: probe, atom, lib or hessian. ``index``: the class (probe), atom, direction or
    feature number. ``model``: a registry id (or the toy's name for LIB and Hessian toys).
    ``layer``: the residual or MLP layer (probe, atom: an int as text, or ``embeddings``), the node
    layer's position (lib), empty (hessian). ``job``: the finished job the feature comes from (atom,
    lib, hessian; empty picks the newest that fits). ``features`` and ``hook``: a probe's feature set
    and hook (``resid_post`` or ``mlp_post``).
    """

    kind: FeatureKind
    index: int
    model: str = ""
    layer: str = ""
    job: str = ""
    features: str = ""
    hook: str = ""

    def query(self) -> dict[str, str]:
        """The URL query that reopens this feature (empty fields left out)."""
        fields = {
            "kind": self.kind,
            "model": self.model,
            "layer": self.layer,
            "index": str(self.index),
            "job": self.job,
            "features": self.features,
            "hook": self.hook,
        }
        return {k: v for k, v in fields.items() if v}

    def moved(self, step: int) -> FeatureRef:
        """The same feature's neighbour by index (Prev/Next); never below 0."""
        return replace(self, index=max(0, self.index + step))

    def layer_number(self) -> int:
        """``layer`` as an int (InvalidParameter naming it otherwise)."""
        try:
            return int(self.layer)
        except ValueError:
            raise InvalidParameter(f"layer {self.layer!r} is not a layer number") from None


def parse_ref(query: Mapping[str, str]) -> FeatureRef:
    """A FeatureRef from a URL query; InvalidParameter with one line per problem otherwise."""
    problems = []
    kind = str(query.get("kind", "")).strip()
    if kind not in FEATURE_KINDS:
        problems.append(f"kind {kind[:40]!r}: choose one of {', '.join(FEATURE_KINDS)}")
    raw_index = str(query.get("index", "0")).strip()
    index = int(raw_index) if raw_index.isdigit() else -1
    if index < 0:
        problems.append(f"index {raw_index[:40]!r} is not a whole number >= 0")
    fields = {name: str(query.get(name, "")).strip() for name in ("model", "layer", "job", "features", "hook")}
    for name, value in fields.items():
        if len(value) > MAX_FIELD or any(ord(c) < 32 for c in value):
            problems.append(f"{name} is not a plain name of at most {MAX_FIELD} characters")
    if fields["hook"] and fields["hook"] not in ("resid_post", "mlp_post"):
        problems.append(f"hook {fields['hook'][:40]!r}: choose resid_post or mlp_post")
    if problems:
        raise InvalidParameter("this feature link is not valid: " + "; ".join(problems), problems)
    return FeatureRef(kind=cast(FeatureKind, kind), index=index, **fields)
