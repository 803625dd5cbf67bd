"""One feature, whatever made it: a probe direction (the thesis), a dictionary atom (sparse coding),
a LIB direction (the Local Interaction Basis) or a Hessian feature (parameter space).

Read top-down: ``ref`` (what names a feature: its kind, model, layer, index, the result it comes
from; the page's deep link), ``directions`` (a kind's directions as vectors in one activation
space, and how a token's activation is read from them), ``contexts`` (top-activating contexts with
every token's activation, and the histogram), ``corpus`` (token activations of packaged text, for
kinds whose result holds no text), ``sources`` (which finished results hold directions of a space)
and ``neighbours`` (the nearest directions of the *other* kinds, by cosine); ``params``, ``result``,
``run`` and ``jobs``: the one job, ``features.corpus`` (packaged text read at a layer, stored once).
Otherwise a view over results other analyses made.
"""

from featgeom_core.features.contexts import top_contexts
from featgeom_core.features.directions import DirectionSet, Space
from featgeom_core.features.neighbours import nearest_across
from featgeom_core.features.ref import FEATURE_KINDS, FeatureRef, parse_ref
from featgeom_core.features.result import Context, Neighbour

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
