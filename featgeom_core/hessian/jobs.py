"""The Hessian-feature analysis as a job: ``hessian.features`` learns k directions in a parameter
block of the XOR net, the toy model of superposition or a language model, and stores them with
every sample's activations (for a language model: every real token of the training texts, and
of held-out texts the features are read on). The fit's losses travel as progress metrics
(``step``, ``steep_loss``, ``interference_loss``), so a page draws the loss curve live."""

from __future__ import annotations

from featgeom_core.hessian.params import HessianFeaturesParams
from featgeom_core.hessian.result import HessianFeaturesResult
from featgeom_core.hessian.run import run_features
from featgeom_core.jobs.protocol import JobKind, register

HESSIAN_FEATURES = register(
    JobKind(
        "hessian.features",
        "features as sparse directions of sample-level Hessians in a parameter block (XOR, TMS, a language model)",
        HessianFeaturesParams,
        run_features,
        HessianFeaturesResult,
        page="pages/hessian_features.py",
        wants_gpu=True,
        example={"target": {"kind": "toy", "model": "xor", "fit": {"k": 3, "steps": 40, "restarts": 1, "init_iterations": 3}}},
    )
)
