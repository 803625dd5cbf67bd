"""Feature sparsity (Deng, Tao and Benton 2023): sparse coding of activations, the four sparsity
metrics, their validation on synthetic sparse-linear data against non-sparse controls, and
sparsity by layer of a real model.

Read top-down: ``data`` (Appendix D: synthetic data and controls), ``greedy`` and ``fista`` (the
coefficient step), ``coding`` (Appendix C: dictionary learning with adaptive lambda), ``metrics``
(section 3), ``synthetic`` (3.1: validation, calibration), ``model`` (section 4: embeddings and
layers); ``params`` and ``result`` declare what goes in and comes out, ``run`` the jobs'
computations, ``jobs`` registers the kinds.
"""

from featgeom_core.sparsity.coding import DictionaryLearner, encode, sparse_code
from featgeom_core.sparsity.data import (
    CONTROL_KINDS,
    control_data,
    sparse_linear_data,
    unit_mean_norm,
)
from featgeom_core.sparsity.greedy import greedy_codes, greedy_reference
from featgeom_core.sparsity.metrics import sparsity_metrics
from featgeom_core.sparsity.params import (
    ModelSparsityParams,
    SparseCodingParams,
    SyntheticGridParams,
    SyntheticParams,
)
from featgeom_core.sparsity.result import (
    ActivationSetResult,
    ModelSparsityResult,
    SparseCode,
    SyntheticSweepResult,
)
from featgeom_core.sparsity.synthetic import (
    calibrated_a,
    measure_synthetic,
)

__all__ = [
    "ActivationSetResult",
    "CONTROL_KINDS",
    "DictionaryLearner",
    "ModelSparsityResult",
    "SyntheticSweepResult",
    "ModelSparsityParams",
    "SparseCode",
    "SparseCodingParams",
    "SyntheticGridParams",
    "SyntheticParams",
    "calibrated_a",
    "control_data",
    "encode",
    "greedy_codes",
    "greedy_reference",
    "measure_synthetic",
    "sparse_code",
    "sparse_linear_data",
    "sparsity_metrics",
    "unit_mean_norm",
]
