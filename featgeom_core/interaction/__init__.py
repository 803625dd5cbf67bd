"""The Local Interaction Basis (Bushnaq et al., Apollo Research 2024): a model as a sequence of node
layers, bases per layer (neuron, PCA, LIB, GIB), interaction edges between consecutive layers,
node and edge ablations, and Leiden modules.

Read top-down: ``sequential`` (Appendix A.4-A.5: node layers, folded biases), ``cores`` and
``jacobians`` (the one derivative behind bases and edges), ``basis`` (section 3.2: PCA whitening,
M, the LIB rotation), ``edges`` (eq. 3.14), ``graph`` (building it all), ``ablation`` (section 4.1,
Appendix B), ``modules`` (4.3); the models ``modadd`` and ``digits``; ``fourier`` (labels for
modular addition); ``params``, ``result``, ``targets`` and ``run`` are the job's parameters,
results, inputs and computation; ``jobs`` registers the kinds.
"""

from featgeom_core.interaction.ablation import (
    AblationContext,
    BisectTrace,
    ablation_context,
    bisect_edge_ablation,
    kept_schedule,
    node_ablation_curve,
)
from featgeom_core.interaction.digits import (
    DigitsMLP,
    digits_data,
    load_digits_mlp,
    train_digits,
)
from featgeom_core.interaction.graph import build_graph, sequential_view
from featgeom_core.interaction.modadd import (
    ModAddTransformer,
    load_modular_addition,
    modular_addition_data,
    train_modular_addition,
)
from featgeom_core.interaction.modules import leiden_modules
from featgeom_core.interaction.params import (
    AblationParams,
    DigitsTarget,
    DigitsTrainParams,
    GraphParams,
    InteractionGraphParams,
    LanguageTarget,
    ModAddConfig,
    ModAddTarget,
    ModAddTrainParams,
    ModulesParams,
)
from featgeom_core.interaction.result import (
    BasisResult,
    InteractionGraph,
    InteractionGraphResult,
    LayerBasis,
    TrainedModel,
)
from featgeom_core.interaction.sequential import Section, SequentialModel

__all__ = [
    "AblationContext",
    "AblationParams",
    "BasisResult",
    "BisectTrace",
    "DigitsMLP",
    "DigitsTarget",
    "DigitsTrainParams",
    "GraphParams",
    "InteractionGraph",
    "InteractionGraphParams",
    "InteractionGraphResult",
    "LanguageTarget",
    "LayerBasis",
    "ModAddConfig",
    "ModAddTarget",
    "ModAddTrainParams",
    "ModAddTransformer",
    "ModulesParams",
    "Section",
    "SequentialModel",
    "TrainedModel",
    "ablation_context",
    "bisect_edge_ablation",
    "build_graph",
    "digits_data",
    "kept_schedule",
    "leiden_modules",
    "load_digits_mlp",
    "load_modular_addition",
    "modular_addition_data",
    "node_ablation_curve",
    "sequential_view",
    "train_digits",
    "train_modular_addition",
]
