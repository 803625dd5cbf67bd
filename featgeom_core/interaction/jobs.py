"""The Local Interaction Basis as jobs: ``lib.train_modadd`` and ``lib.train_digits`` (our models,
stored) and ``lib.graph`` (interaction graphs in several bases, their ablations, stored). Kind names
keep the ``lib.`` prefix of featgeom 0.1, so job ids and stored results stay where they were."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from featgeom_core.interaction.params import (
    DigitsTrainParams,
    InteractionGraphParams,
    ModAddTrainParams,
)
from featgeom_core.interaction.result import InteractionGraphResult, TrainedModel
from featgeom_core.interaction.run import run_graph, run_train_digits, run_train_modadd
from featgeom_core.jobs.protocol import JobKind, register


def _train_link(model: str) -> Callable[[str, Mapping[str, Any]], dict[str, str]]:
    def link(job_id: str, params: Mapping[str, Any]) -> dict[str, str]:
        return {"net": model, "source": "job", "train": job_id}

    return link


LIB_TRAIN_MODADD = register(
    JobKind(
        "lib.train_modadd",
        "train the modular-addition transformer (the peer's recipe; minutes to tens of minutes on a CPU)",
        ModAddTrainParams,
        run_train_modadd,
        TrainedModel,
        page="pages/interaction_graph.py",
        wants_gpu=True,
        link=_train_link("modadd"),
        example={"model": {"modulus": 7, "d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": 16}, "epochs": 3},
    )
)
LIB_TRAIN_DIGITS = register(
    JobKind(
        "lib.train_digits",
        "train the digits MLP (seconds)",
        DigitsTrainParams,
        run_train_digits,
        TrainedModel,
        page="pages/interaction_graph.py",
        link=_train_link("digits"),
        example={"hidden": 8, "depth": 1, "epochs": 3},
    )
)
LIB_GRAPH = register(
    JobKind(
        "lib.graph",
        "interaction graphs (LIB, PCA, ...) of a model, node ablation curves and the edge-ablation bisect",
        InteractionGraphParams,
        run_graph,
        InteractionGraphResult,
        page="pages/interaction_graph.py",
        wants_gpu=True,
        example={"target": {"kind": "digits", "train": {"hidden": 8, "depth": 1, "epochs": 20}}, "max_samples": 200},
    )
)
