"""Feature identification through sparse eigendecomposition of sample-level Hessians (the write-up
"Feature and Circuit Identification through Sparse Eigendecomposition").

For a trained model f(W0, ·) and a block of its weights, each sample x has a divergence D(f, x, W)
(MSE, or normalised KL for logits) that is 0 at W0; its sample-level Hessian H(x) in the block is
never formed. A feature is a unit direction u in the block; a sample's activation of it is the
curvature uᵀH(x)u, computed for all samples and directions at once by batched nested
Jacobian-vector products. k directions are learned so that some samples curve steeply along
each and few samples curve steeply along two overlapping ones.

Read top-down: ``blocks`` (which weights), ``divergence`` (D), ``curvature`` (uᵀH(x)u, and the
write-up's double-backward loop as a reference), ``losses`` (steepness and interference),
``eigen`` (the mean Hessian's top eigenvectors: the first start), ``fit`` (the bi-level
optimisation), ``reading`` (top samples, contexts, interference), ``toys`` (the XOR net and the
toy model of superposition), ``language`` (texts as token batches, a language model's per-token
outputs); ``params`` and ``result`` declare what goes in and comes out, ``run`` the job's
computation and ``jobs`` its kind.
"""

from featgeom_core.hessian.blocks import (
    ParameterBlock,
    resolve_block,
    trainable_parameter_names,
)
from featgeom_core.hessian.curvature import (
    directional_curvature,
    reference_curvature,
    sample_divergence,
)
from featgeom_core.hessian.divergence import (
    OUTPUT_KIND_ATTRIBUTE,
    divergence_from_outputs,
)
from featgeom_core.hessian.eigen import top_eigenvectors
from featgeom_core.hessian.fit import fit_hessian_features
from featgeom_core.hessian.losses import interference_loss, objective, steepness_loss
from featgeom_core.hessian.params import (
    HessianFeaturesParams,
    HessianParams,
    LanguageFit,
    LanguageTarget,
    ToyFit,
    ToyTarget,
)
from featgeom_core.hessian.result import (
    HessianFeatures,
    HessianFeaturesResult,
    TokenSet,
)
from featgeom_core.hessian.toys import (
    TOYS,
    HessianToy,
    ToySpec,
    ToySuperposition,
    XorNet,
    polygon_error,
    sparse_features,
    toy_superposition,
    xor_net,
)

__all__ = [
    "TOYS",
    "HessianFeatures",
    "HessianFeaturesParams",
    "HessianFeaturesResult",
    "HessianParams",
    "HessianToy",
    "LanguageFit",
    "LanguageTarget",
    "TokenSet",
    "ToyFit",
    "ToySpec",
    "ToyTarget",
    "OUTPUT_KIND_ATTRIBUTE",
    "ParameterBlock",
    "ToySuperposition",
    "XorNet",
    "directional_curvature",
    "divergence_from_outputs",
    "fit_hessian_features",
    "interference_loss",
    "objective",
    "polygon_error",
    "reference_curvature",
    "resolve_block",
    "sample_divergence",
    "sparse_features",
    "steepness_loss",
    "top_eigenvectors",
    "toy_superposition",
    "trainable_parameter_names",
    "xor_net",
]
