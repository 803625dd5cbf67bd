"""One feature, whatever made it: a probe direction (the thesis), a dictionary atom (sparse coding),
a LIB direction (the Local Interaction Basis) or a Hessian feature (parameter space).

Read top-down: ``ref`` (what names a feature: its kind, model, layer, index, the result it comes
from; the page's deep link), ``directions`` (a kind's directions as vectors in one activation
space, and how a token's activation is read from them), ``contexts`` (top-activating contexts with
every token's activation, and the histogram), ``corpus`` (token activations of packaged text, for
kinds whose result holds no text), ``sources`` (which finished results hold directions of a space)
and ``neighbours`` (the nearest directions of the *other* kinds, by cosine). A view over results
other analyses made: no job of its own.
"""

from featgeom_core.features.contexts import Context, top_contexts
from featgeom_core.features.directions import DirectionSet, Space
from featgeom_core.features.neighbours import Neighbour, nearest_across
from featgeom_core.features.ref import FEATURE_KINDS, FeatureRef, parse_ref

__all__ = [
    "FEATURE_KINDS",
    "Context",
    "DirectionSet",
    "FeatureRef",
    "Neighbour",
    "Space",
    "nearest_across",
    "parse_ref",
    "top_contexts",
]
